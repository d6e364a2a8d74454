#ifndef TANDEM_PROXY_MESH_POLICY_H_
#define TANDEM_PROXY_MESH_POLICY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/socket_address.h"

namespace tandem::config {
class ProxyConfig;
}  // namespace tandem::config
namespace tandem::policy::v1 {
class WorkloadPolicy;
}  // namespace tandem::policy::v1

namespace tandem::proxy {

enum class InboundMode { kStrict, kPermissive };

struct InboundPortPolicy {
  uint16_t port = 0;
  InboundMode mode = InboundMode::kStrict;
  // Exact SPIFFE IDs, or prefixes ending in "/*".
  std::vector<std::string> allowed_identities;
};

// The rules a mesh policy carries besides revocations; the config file's are the
// starting policy (see MeshPolicy, which matches them).
struct MeshRules {
  std::vector<Cidr> mesh_cidrs;  // empty: everything is meshed
  std::vector<uint16_t> outbound_excluded_ports;
  InboundMode default_inbound_mode = InboundMode::kStrict;
  std::vector<InboundPortPolicy> inbound_ports;
  std::vector<std::pair<std::string, std::string>> expected_identities;  // dest, id
};

// A peer refused at every handshake until `expires`: one certificate (by serial) or a
// whole SPIFFE ID.
struct RevocationEntry {
  std::string serial_hex;  // lower-case hex, no leading zeros; or empty
  std::string spiffe_id;   // or empty
  absl::Time expires;
  std::string reason;
  bool close_open_connections = false;
};

// Parses and validates the rule fields the config file and a WorkloadPolicy share (same
// names and types in both protos). Errors are kInvalidArgument naming the field after
// `what` ("config field" or "policy field"). SPIFFE IDs must be in `trust_domain`.
absl::StatusOr<MeshRules> MeshRulesFromConfig(const config::ProxyConfig& pb,
                                              const std::string& trust_domain);

// Returns true when `id` matches an allow-list entry (exact, or prefix + "/*"); an empty
// list allows everyone.
bool IdentityAllowed(const std::vector<std::string>& allowed, const std::string& id);

// One compiled, immutable mesh policy: which destinations are meshed, how each inbound
// port is guarded and by whom it may be used, which identity each destination must
// present, and which peers are revoked. Built from the config file (the starting
// policy) or from the control plane's WorkloadPolicy. Immutable, so any thread may read
// it; connections hold a shared_ptr for their whole life.
class MeshPolicy {
 public:
  // The starting policy: the rules of the proxy's config file (ProxyOptions::policy).
  static std::shared_ptr<const MeshPolicy> FromConfigRules(const MeshRules& rules);
  // Validates a control-plane policy; an error (kInvalidArgument) says what this proxy
  // cannot apply. Revocations already expired at `now` are dropped.
  static absl::StatusOr<std::shared_ptr<const MeshPolicy>> FromProto(
      const policy::v1::WorkloadPolicy& pb, const std::string& version,
      const std::string& trust_domain, absl::Time now);

  // Returns true when traffic to `destination` should be upgraded to mTLS.
  bool IsMeshed(const SocketAddress& destination) const;
  // Looks up the inbound policy for `port` (default mode, no allow-list, if absent).
  InboundPortPolicy InboundPolicy(uint16_t port) const;
  // Returns the SPIFFE ID expected of `destination`, or "" for any in the trust domain.
  std::string ExpectedIdentity(const SocketAddress& destination) const;
  // Returns the revocation naming this peer (by leaf serial or SPIFFE ID) still in force
  // at `now`, or null. Of several, one that closes open connections, so an entry
  // without that flag never shadows one with it.
  const RevocationEntry* FindRevocation(const std::string& serial_hex,
                                        const std::string& spiffe_id,
                                        absl::Time now) const;
  // True when some revocation asks to close connections already open.
  bool ClosesOpenConnections() const;

  const std::string& version() const { return version_; }
  // "config file" or "control plane".
  const std::string& source() const { return source_; }
  const MeshRules& rules() const { return rules_; }
  const std::vector<RevocationEntry>& revocations() const { return revocations_; }
  // The policy as JSON for the admin endpoint.
  std::string ToJson() const;

 private:
  MeshPolicy(MeshRules rules, std::vector<RevocationEntry> revocations,
             std::string version, std::string source);

  const MeshRules rules_;
  const std::vector<RevocationEntry> revocations_;
  const std::string version_;
  const std::string source_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_MESH_POLICY_H_
