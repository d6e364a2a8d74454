#ifndef TANDEM_AGENT_APP_SOCKET_PROBE_H_
#define TANDEM_AGENT_APP_SOCKET_PROBE_H_

#include "absl/time/time.h"
#include "agent/app_probe_result.h"
#include "agent/app_probe_spec.h"

namespace tandem::agent {

// Runs a tcpSocket or httpGet probe (`spec.kind` must be one of them) as the kubelet
// would: tcpSocket succeeds when the connection opens; httpGet sends GET spec.path
// (headers: Host, User-Agent kube-probe/..., Accept */*, each replaced by an httpHeaders
// entry of that name, then the others; Connection: close) over TCP, or over TLS without
// checking the server's certificate for HTTPS, and succeeds on a status of 200..399
// (a redirect counts as success and is not followed). Every step ends at `deadline`.
// BoringSSL does the TLS; the header keeps it out of gRPC code.
//
// Threading: blocks the calling thread up to `deadline`; any thread, concurrently.
AppProbeResult RunSocketProbe(const AppProbeSpec& spec, absl::Time deadline);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_APP_SOCKET_PROBE_H_
