#ifndef TANDEM_PROXY_GRPC_STREAM_H_
#define TANDEM_PROXY_GRPC_STREAM_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

struct nghttp2_session;

namespace tandem::proxy {

// Messages larger than this end the stream (gRPC's default receive limit).
inline constexpr size_t kMaxGrpcMessageBytes = 4 << 20;

// One gRPC bidirectional stream to a server on a Unix socket (the agent's SDS and mesh
// policy services), spoken directly: HTTP/2 from libnghttp2, gRPC's length-prefixed
// messages, protobuf. The proxy needs nothing else of gRPC, and the library cost it
// 2.6 MB of code and a dozen threads (bench/README.md, "Idle RSS").
//
// Blocking, like grpc::ClientReaderWriter: Write and Read run the connection until they
// are done, on the calling thread. Threading: one thread uses the stream; Cancel() may
// come from any thread and makes a blocked Write or Read return false.
class GrpcStream {
 public:
  // Connects to `socket_path` and opens a stream to `method` ("/package.Service/Method").
  static absl::StatusOr<std::unique_ptr<GrpcStream>> Open(const std::string& socket_path,
                                                          const std::string& method);
  ~GrpcStream();
  GrpcStream(const GrpcStream&) = delete;
  GrpcStream& operator=(const GrpcStream&) = delete;

  // Sends one message; false once the stream has ended (see Finish()).
  bool Write(const google::protobuf::MessageLite& message);
  // Waits for the next message; false once the stream has ended (see Finish()).
  bool Read(google::protobuf::MessageLite* message);
  // Any thread: ends the stream; a blocked Write or Read returns false.
  void Cancel();
  // Why the stream ended: the server's grpc-status, or what broke. OK while open.
  absl::Status Finish() const { return status_; }

  // Cuts complete gRPC messages (1-byte compressed flag, 4-byte big-endian length,
  // body) off the front of `buffer` and appends their bodies to `out`; leaves a partial
  // one in `buffer`. Refuses compressed or oversized messages. Exposed for the fuzzer.
  static absl::Status Deframe(std::string& buffer, std::deque<std::string>& out);

 private:
  friend struct GrpcStreamCallbacks;
  GrpcStream() = default;
  absl::Status Start(const std::string& socket_path, const std::string& method);
  // Runs the connection until `done()` holds; false once the stream has ended.
  template <typename Done>
  bool RunUntil(Done done);
  void Fail(absl::Status status);

  int fd_ = -1;
  int cancel_fd_ = -1;
  std::atomic<bool> cancelled_{false};
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::string outgoing_;  // framed messages nghttp2 has not taken yet
  bool write_deferred_ = false;  // nghttp2 waits for resume_data
  bool socket_full_ = false;     // the last send hit EAGAIN: wait for POLLOUT
  std::string incoming_;  // bytes of a partial message
  std::deque<std::string> messages_;
  bool ended_ = false;
  int http_status_ = 0;
  int grpc_status_ = -1;  // from the trailers; -1 until they arrive
  std::string grpc_message_;
  absl::Status status_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_GRPC_STREAM_H_
