// Fuzzes `tandemctl proxy-status`'s reading of tandem-ca's /policy-streams JSON, whose
// strings are what agents and proxies reported about themselves. A parse either fails
// with kInvalidArgument and a reason, or gives streams whose table has one line per
// stream plus the header and no control character but the line ends.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "tandemctl/proxy_status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<tandem::tandemctl::ProxyStatus>> streams =
      tandem::tandemctl::ParseProxyStatus(json);
  if (!streams.ok()) {
    if (streams.status().code() != absl::StatusCode::kInvalidArgument ||
        streams.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  std::string table = tandem::tandemctl::FormatProxyStatus(*streams, absl::Now());
  size_t lines = 0;
  for (char c : table) {
    if (c == '\n') {
      ++lines;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      std::abort();
    }
  }
  if (lines != streams->size() + 1) std::abort();
  return 0;
}
