#ifndef TANDEM_COMMON_NODE_METADATA_H_
#define TANDEM_COMMON_NODE_METADATA_H_

namespace tandem {

// Keys of tandem.policy.v1.Node's metadata, which the agent fills (as Istio's agent
// fills ISTIO_VERSION into Envoy's node) and tandem-ca shows per stream
// (`tandemctl proxy-status`).
inline constexpr char kNodeAgentVersion[] = "AGENT_VERSION";
// The certificate the agent last delivered to its proxy: serial (lower-case hex) and
// not-after (RFC 3339, UTC).
inline constexpr char kNodeCertSerial[] = "CERT_SERIAL";
inline constexpr char kNodeCertNotAfter[] = "CERT_NOT_AFTER";

// The proxy's user_agent_name.
inline constexpr char kProxyUserAgent[] = "tandem-proxy";

}  // namespace tandem

#endif  // TANDEM_COMMON_NODE_METADATA_H_
