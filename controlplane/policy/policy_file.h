#ifndef TANDEM_CONTROLPLANE_POLICY_POLICY_FILE_H_
#define TANDEM_CONTROLPLANE_POLICY_POLICY_FILE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/auth/token_authenticator.h"
#include "tandem/mesh_policy.pb.h"

namespace tandem::controlplane {

// Returns a version string that depends only on `bytes` (FNV-1a 64, 16 hex digits):
// the same input gives the same version in every process and after a restart.
std::string StableVersion(std::string_view bytes);

// The operator's mesh policy file (YAML, or JSON as a YAML subset), parsed and
// validated; see docs/controlplane.md for the schema. `defaults` apply to every
// workload; `workloads` entries select a namespace (and optionally a service account)
// and override the fields they set, the most specific entry winning field by field.
// Immutable after Parse; any thread may use it.
class PolicyFile {
 public:
  // Parses `text`. Every refusal is kInvalidArgument naming the place as
  // "<file_name>:<line>: <field path>: <what is wrong>", e.g.
  // mesh-policy.yaml:14: workloads[1].inboundPorts[0].allow[2]: "spiffe:/x" is not a
  // SPIFFE ID. Unknown keys, duplicate keys and duplicate selectors are refused.
  static absl::StatusOr<PolicyFile> Parse(std::string_view text,
                                          std::string_view file_name);

  // Returns the policy of the workload running as `account`, without revocations.
  tandem::policy::v1::WorkloadPolicy Resolve(const ServiceAccount& account) const;
  // revocation.closeOpenConnections: whether new revocations also close open
  // connections.
  bool close_open_connections() const { return close_open_connections_; }
  // StableVersion of the file's text.
  const std::string& version() const { return version_; }

  // The fields one layer (defaults or a workloads entry) sets; unset fields fall
  // through to the less specific layer.
  struct Layer {
    std::optional<std::vector<std::string>> mesh_cidrs;
    std::optional<std::vector<uint32_t>> outbound_excluded_ports;
    std::optional<tandem::config::InboundMode> inbound_mode;
    std::optional<std::vector<tandem::config::InboundPort>> inbound_ports;
    std::optional<std::vector<tandem::config::ExpectedIdentity>> expected_identities;
  };
  struct WorkloadEntry {
    std::string ns;
    std::string service_account;  // empty: every service account of `ns`
    Layer fields;
  };

 private:
  PolicyFile() = default;

  Layer defaults_;
  std::vector<WorkloadEntry> workloads_;
  bool close_open_connections_ = false;
  std::string version_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_POLICY_POLICY_FILE_H_
