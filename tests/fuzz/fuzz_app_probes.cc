// Fuzzes the agent's TANDEM_APP_PROBES parser (the pod spec's probes, as the injector
// wrote them): anything is refused with InvalidArgument or yields probes that hold the
// invariants the probe runner relies on.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/app_probe_spec.h"

using tandem::agent::AppProbeSpec;
using tandem::agent::AppProbeTable;
using tandem::agent::ParseAppProbes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<AppProbeTable> table =
      ParseAppProbes(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!table.ok()) {
    if (table.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  for (const auto& [path, spec] : *table) {
    if (path != "/app-health/" + spec.container + "/" + spec.probe) std::abort();
    if (spec.port == 0 || spec.timeout < absl::Seconds(1)) std::abort();
    in6_addr addr;
    if (inet_pton(AF_INET, spec.host.c_str(), &addr) != 1 &&
        inet_pton(AF_INET6, spec.host.c_str(), &addr) != 1) {
      std::abort();
    }
    // What goes into a request line or a header must not be able to split it.
    if (spec.path.empty() || spec.path[0] != '/' ||
        spec.path.find_first_of(" \r\n") != std::string::npos) {
      std::abort();
    }
    for (const auto& [name, value] : spec.headers) {
      if (name.empty() || name.find_first_of(" :\r\n") != std::string::npos ||
          value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        std::abort();
      }
    }
  }
  return 0;
}
