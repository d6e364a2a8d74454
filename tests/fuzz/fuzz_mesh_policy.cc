// Fuzzes both ends of the mesh policy: the operator's policy file as tandem-ca parses
// it (YAML/JSON), and the WorkloadPolicy a proxy receives through its agent. A file the
// CA accepts must resolve to a policy the proxy either applies or refuses with a reason
// (federated identities are valid in the file, refused by a proxy without their roots);
// a refusal of either parser must be kInvalidArgument and say why.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "controlplane/policy/policy_file.h"
#include "proxy/mesh_policy.h"

namespace {

void ApplyInProxy(const tandem::policy::v1::WorkloadPolicy& policy) {
  absl::StatusOr<std::shared_ptr<const tandem::proxy::MeshPolicy>> compiled =
      tandem::proxy::MeshPolicy::FromProto(policy, "v", "cluster.local", absl::Now());
  if (!compiled.ok()) {
    if (compiled.status().code() != absl::StatusCode::kInvalidArgument ||
        compiled.status().message().empty()) {
      std::abort();
    }
    return;
  }
  (void)(*compiled)->ToJson();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    // The operator's file, as tandem-ca reads it.
    absl::StatusOr<tandem::controlplane::PolicyFile> file =
        tandem::controlplane::PolicyFile::Parse(rest, "fuzz.yaml");
    if (!file.ok()) {
      if (file.status().code() != absl::StatusCode::kInvalidArgument ||
          file.status().message().find("fuzz.yaml") == absl::string_view::npos) {
        std::abort();
      }
      return 0;
    }
    for (const char* sa : {"web", "db"}) ApplyInProxy(file->Resolve({"shop", sa}));
  } else {
    // Bytes from the agent's stream, as the proxy's policy client gets them.
    tandem::policy::v1::WorkloadPolicy policy;
    if (policy.ParseFromString(rest)) ApplyInProxy(policy);
  }
  return 0;
}
