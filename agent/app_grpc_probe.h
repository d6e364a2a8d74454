#ifndef TANDEM_AGENT_APP_GRPC_PROBE_H_
#define TANDEM_AGENT_APP_GRPC_PROBE_H_

#include "absl/time/time.h"
#include "agent/app_probe_result.h"
#include "agent/app_probe_spec.h"

namespace tandem::agent {

// Runs a grpc probe (`spec.kind` must be kGrpc) as the kubelet would: a plaintext
// grpc.health.v1.Health/Check for spec.grpc_service on a fresh connection, which
// succeeds only with an OK RPC answering SERVING; the RPC's deadline is `deadline`.
// No gRPC types in this header, so the probe runner need not include gRPC.
//
// Threading: blocks the calling thread up to `deadline`; any thread, concurrently.
AppProbeResult RunGrpcProbe(const AppProbeSpec& spec, absl::Time deadline);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_APP_GRPC_PROBE_H_
