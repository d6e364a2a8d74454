#ifndef TANDEM_PROXY_CONFIG_H_
#define TANDEM_PROXY_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/mesh_policy.h"
#include "proxy/socket_address.h"

namespace tandem::proxy {

// Everything tandem-proxy needs, validated. Immutable once built; any thread reads it.
// Our own workload as Istio's metric labels name it (istio_tcp_*). tandem-proxy reads
// them from the environment the injector sets (docs/observability.md); "unknown" is
// Istio's value for what is not known.
struct WorkloadLabels {
  std::string name = "unknown";                // ISTIO_META_WORKLOAD_NAME
  std::string namespace_ = "unknown";          // POD_NAMESPACE
  std::string app = "unknown";                 // pod label app
  std::string version = "unknown";             // pod label version
  std::string canonical_service = "unknown";   // service.istio.io/canonical-name
  std::string canonical_revision = "unknown";  // service.istio.io/canonical-revision
  std::string cluster = "unknown";             // ISTIO_META_CLUSTER_ID
};

struct ProxyOptions {
  std::string trust_domain = "cluster.local";
  SocketAddress outbound;
  SocketAddress inbound;
  SocketAddress admin;
  SocketAddress metrics;
  SocketAddress health;
  int workers = 1;
  // Where inbound connections go (with the original destination port). Unset
  // (length 0): the loopback address of the connection's own family, 127.0.0.1 or ::1.
  SocketAddress app_host;
  bool has_fixed_destination = false;
  SocketAddress fixed_destination;
  bool has_fixed_app = false;
  SocketAddress fixed_app;
  // In force until the control plane sends a policy (policy_from_agent).
  MeshRules policy;
  uint32_t socket_mark = 1337;
  int max_connections = 10000;
  // Per direction per connection; also what one read or send of a TLS socket moves.
  size_t buffer_bytes = 256 * 1024;
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration handshake_timeout = absl::Seconds(5);
  absl::Duration idle_timeout = absl::Hours(1);
  absl::Duration drain_timeout = absl::Seconds(5);
  bool allow_tls12 = false;
  bool access_log = false;
  std::string cert_chain_file;
  std::string private_key_file;
  std::string trust_bundle_file;
  std::string sds_socket;
  // Take the mesh policy from the agent (over sds_socket) as the control plane pushes it.
  bool policy_from_agent = false;
  // Labels of our own side of istio_tcp_* (set by main.cc from the environment).
  WorkloadLabels workload;
  // At most this many istio_tcp_* label sets; further peers fold into an overflow
  // series (--peer-label-sets).
  size_t peer_label_sets = 1000;
};

// The app address an inbound connection to `destination` is relayed to: the fixed app,
// or app_host (else the loopback of destination's family) with destination's port.
SocketAddress AppAddress(const ProxyOptions& options, const SocketAddress& destination);

// Parses the JSON config file text (schema: proto/tandem/proxy_config.proto) and
// validates every field. Errors are kInvalidArgument naming the field. Listener
// addresses default to [::] (dual-stack: IPv4 and IPv6) where the kernel has IPv6,
// else 0.0.0.0.
absl::StatusOr<ProxyOptions> ParseProxyConfig(const std::string& json);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_CONFIG_H_
