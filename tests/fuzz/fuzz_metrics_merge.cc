// Fuzzes what the proxy reads from the other /metrics pages it merges (the agent's and
// the app's, another process's bytes): the HTTP answer is parsed, and its body merged
// with a fixed page of the proxy's own. The merge must keep every family's HELP/TYPE
// once and never drop the proxy's own page.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/metrics_merger.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::string> body = tandem::proxy::HttpResponseBody(bytes);
  const std::string own = "# TYPE tandem_proxy_ready gauge\ntandem_proxy_ready 1\n";
  std::string merged =
      tandem::proxy::MergeExpositions({own, body.ok() ? *body : bytes});
  if (merged.rfind(own, 0) != 0 &&
      merged.find("tandem_proxy_ready 1\n") == std::string::npos) {
    std::abort();
  }
  // Merging the result again changes nothing: each family is grouped already.
  if (tandem::proxy::MergeExpositions({merged}) != merged) std::abort();
  return 0;
}
