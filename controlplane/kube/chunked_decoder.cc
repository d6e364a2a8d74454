#include "controlplane/kube/chunked_decoder.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::controlplane {
namespace {

constexpr size_t kMaxLine = 1024;

}  // namespace

absl::Status ChunkedDecoder::Fail(absl::string_view why) {
  state_ = State::kFailed;
  return absl::UnavailableError(absl::StrCat("chunked body: ", why));
}

absl::Status ChunkedDecoder::Feed(absl::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    switch (state_) {
      case State::kDone:
        return absl::OkStatus();
      case State::kFailed:
        return absl::UnavailableError("chunked body: already failed");
      case State::kData: {
        size_t n = std::min(remaining_, bytes.size());
        out->append(bytes.data(), n);
        bytes.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = State::kDataEnd;
          remaining_ = 2;
        }
        break;
      }
      case State::kDataEnd: {
        // The CRLF after a chunk's data, possibly split across two feeds.
        const char want = remaining_ == 2 ? '\r' : '\n';
        if (bytes[0] != want) return Fail("a chunk is not followed by CRLF");
        bytes.remove_prefix(1);
        if (--remaining_ == 0) state_ = State::kSize;
        break;
      }
      case State::kSize:
      case State::kTrailer: {
        size_t lf = bytes.find('\n');
        size_t take = lf == absl::string_view::npos ? bytes.size() : lf + 1;
        if (line_.size() + take > kMaxLine)
          return Fail("a size or trailer line over 1 KiB");
        line_.append(bytes.data(), take);
        bytes.remove_prefix(take);
        if (lf == absl::string_view::npos) break;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          return Fail("a line not ended by CRLF");
        }
        absl::string_view line(line_.data(), line_.size() - 2);
        if (state_ == State::kTrailer) {
          if (line.empty()) state_ = State::kDone;  // trailers, if any, are skipped
          line_.clear();
          break;
        }
        absl::string_view size_text =
            absl::StripAsciiWhitespace(line.substr(0, line.find(';')));
        uint64_t size = 0;
        if (size_text.empty() || size_text.size() > 16 ||
            size_text.find_first_not_of("0123456789abcdefABCDEF") !=
                absl::string_view::npos ||
            !absl::SimpleHexAtoi(size_text, &size)) {
          return Fail("a chunk size that is not hexadecimal");
        }
        if (size > max_chunk_bytes_) {
          return Fail(
              absl::StrCat("a chunk of ", size, " bytes (limit ", max_chunk_bytes_, ")"));
        }
        line_.clear();
        if (size == 0) {
          state_ = State::kTrailer;
        } else {
          state_ = State::kData;
          remaining_ = static_cast<size_t>(size);
        }
        break;
      }
    }
  }
  return state_ == State::kFailed ? absl::UnavailableError("chunked body: already failed")
                                  : absl::OkStatus();
}

}  // namespace tandem::controlplane
