#ifndef TANDEM_CONTROLPLANE_INJECTION_PROBE_REWRITE_H_
#define TANDEM_CONTROLPLANE_INJECTION_PROBE_REWRITE_H_

#include "absl/status/statusor.h"
#include "controlplane/injection/yaml_json.h"

namespace tandem::injection {

// The agent's app-health port: kubelet probes land here (15020 is never captured), and
// the agent checks the app over loopback as uid 1337, which iptables lets through.
inline constexpr int kAppHealthPort = 15020;

// Moves the httpGet, tcpSocket and grpc probes (liveness, readiness, startup) of the
// app containers in `containers` (a pod spec's containers array) to
// httpGet {path: /app-health/<container>/<livez|readyz|startupz>, port: 15020}, keeping
// their timing fields. Returns the originals for the agent's TANDEM_APP_PROBES, keyed
// by those paths, with named ports resolved to the container's containerPort and
// defaults filled in. exec probes stay. kInvalidArgument naming the container and the
// probe when a port is neither a number in 1..65535 nor a port name of the container.
absl::StatusOr<Json> RewriteAppProbes(Json& containers);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_PROBE_REWRITE_H_
