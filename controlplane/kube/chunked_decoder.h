#ifndef TANDEM_CONTROLPLANE_KUBE_CHUNKED_DECODER_H_
#define TANDEM_CONTROLPLANE_KUBE_CHUNKED_DECODER_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::controlplane {

// Removes HTTP/1.1 chunked transfer coding (RFC 9112 section 7.1) from a body that
// arrives in pieces of any size, as a Kubernetes watch stream does: chunk extensions
// and trailers are skipped. Untrusted input: a size line longer than 1 KiB, a size that
// is not hex or exceeds `max_chunk_bytes`, or a chunk not followed by CRLF is
// kUnavailable, and the decoder stays failed. Not thread-safe (one stream, one thread).
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(size_t max_chunk_bytes = size_t{16} << 20)
      : max_chunk_bytes_(max_chunk_bytes) {}

  // Decodes `bytes`, appending body bytes to *out. Bytes after the end of the body
  // are ignored.
  absl::Status Feed(absl::string_view bytes, std::string* out);
  // True once the last chunk and the trailers have been read.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone, kFailed };
  absl::Status Fail(absl::string_view why);

  const size_t max_chunk_bytes_;
  State state_ = State::kSize;
  std::string line_;      // the size or trailer line read so far
  size_t remaining_ = 0;  // bytes left in the current chunk (kData), or CRLF (kDataEnd)
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_CHUNKED_DECODER_H_
