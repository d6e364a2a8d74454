#include "controlplane/injection/workload_identity.h"

#include "absl/strings/match.h"

namespace tandem::injection {
namespace {

std::string Text(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The first of `keys` that `labels` holds with a non-empty value.
std::string FirstLabel(const Json& labels, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (std::string value = Text(labels, key); !value.empty()) return value;
  }
  return "";
}

std::string NameOf(const Json& metadata, const Json& labels, absl::string_view owner) {
  if (!owner.empty()) return std::string(owner);
  if (auto refs = metadata.find("ownerReferences");
      metadata.is_object() && refs != metadata.end() && refs->is_array()) {
    for (const Json& ref : *refs) {
      if (!ref.is_object() || ref.value("controller", false) != true) continue;
      std::string name = Text(ref, "name");
      if (name.empty()) continue;
      // A Deployment's ReplicaSet is <deployment>-<pod-template-hash>.
      std::string hash = Text(labels, "pod-template-hash");
      if (Text(ref, "kind") == "ReplicaSet" && !hash.empty() &&
          absl::EndsWith(name, "-" + hash)) {
        name.resize(name.size() - hash.size() - 1);
      }
      return name;
    }
  }
  if (std::string name = Text(metadata, "name"); !name.empty()) return name;
  std::string generate = Text(metadata, "generateName");
  while (!generate.empty() && generate.back() == '-') generate.pop_back();
  return generate;
}

}  // namespace

WorkloadIdentity DeriveWorkloadIdentity(const Json& pod, absl::string_view owner) {
  Json metadata = pod.is_object() && pod.contains("metadata") ? pod["metadata"] : Json();
  Json labels =
      metadata.is_object() && metadata.contains("labels") ? metadata["labels"] : Json();
  WorkloadIdentity id;
  id.name = NameOf(metadata, labels, owner);
  id.app = Text(labels, "app");
  id.version = Text(labels, "version");
  id.canonical_service = FirstLabel(
      labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"});
  if (id.canonical_service.empty()) id.canonical_service = id.name;
  id.canonical_revision = FirstLabel(labels, {"service.istio.io/canonical-revision",
                                              "app.kubernetes.io/version", "version"});
  if (id.canonical_revision.empty()) id.canonical_revision = "latest";
  return id;
}

}  // namespace tandem::injection
