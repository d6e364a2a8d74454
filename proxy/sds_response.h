#ifndef TANDEM_PROXY_SDS_RESPONSE_H_
#define TANDEM_PROXY_SDS_RESPONSE_H_

#include "absl/status/statusor.h"
#include "common/secret_sink.h"
#include "envoy/sds.pb.h"

namespace tandem::proxy {

// The type_url of an envoy Secret: what the proxy subscribes to and accepts.
inline constexpr char kSdsSecretTypeUrl[] =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

// Applies one SDS DiscoveryResponse from the agent to the secret delivered so far on
// the stream ("default" = key + chain and "ROOTCA" = trust bundle may come in separate
// responses), leaving `held` untouched: returns the merged secret, or kInvalidArgument
// naming what is wrong (type_url, a resource that is not an envoy Secret), which is
// what the NACK carries. Validating the PEM text is the SecretSink's job. Pure and free
// of gRPC, so it can be fuzzed without a channel. Any thread.
absl::StatusOr<WorkloadSecretPem> ApplySdsResponse(
    const ::envoy::service::discovery::v3::DiscoveryResponse& response,
    const WorkloadSecretPem& held);

// Returns true once chain and bundle have both arrived: something to install.
bool SdsSecretComplete(const WorkloadSecretPem& secret);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SDS_RESPONSE_H_
