#ifndef TANDEM_AGENT_CA_REACHABILITY_H_
#define TANDEM_AGENT_CA_REACHABILITY_H_

#include "absl/status/status.h"

namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::agent {

// Returns whether a call to the CA that ended with `code` reached it: any answer, a
// refusal included, proves the CA is there; UNAVAILABLE (no connection) and
// DEADLINE_EXCEEDED (no answer in time) mean it was not reached.
bool ReachedCa(absl::StatusCode code);

// Sets tandem_agent_ca_reachable in `registry` from a call that ended with `code`. The
// renewal loop and the mesh policy stream both report, so the gauge stays current
// between renewals; it is absent until the first call ends, so an agent that could not
// even try (no token) is not reported as cut off. Any thread.
void RecordCaCall(metrics::Registry& registry, absl::StatusCode code);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_CA_REACHABILITY_H_
