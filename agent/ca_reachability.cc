#include "agent/ca_reachability.h"

#include "common/metrics/registry.h"

namespace tandem::agent {

bool ReachedCa(absl::StatusCode code) {
  return code != absl::StatusCode::kUnavailable &&
         code != absl::StatusCode::kDeadlineExceeded;
}

void RecordCaCall(metrics::Registry& registry, absl::StatusCode code) {
  // A lookup under the registry's lock: once per CA call, never on a data path.
  registry
      .GetGauge("tandem_agent_ca_reachable",
                "1 when the agent's last call to the CA (renewal or mesh policy stream) "
                "reached it, 0 when it could not connect or got no answer in time.")
      .Set(ReachedCa(code) ? 1 : 0);
}

}  // namespace tandem::agent
