#include "controlplane/injection/kube_inject.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

std::string StringAt(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json& At(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

bool IsWorkloadKind(const std::string& kind) {
  return kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
         kind == "Job" || kind == "ReplicaSet";
}

}  // namespace

absl::StatusOr<std::string> KubeInject(absl::string_view yaml, absl::string_view source,
                                       absl::string_view default_namespace,
                                       const Injector& injector) {
  absl::StatusOr<std::vector<Json>> documents = ParseYamlDocuments(yaml, source);
  if (!documents.ok()) return documents.status();
  std::string out;
  for (Json& document : *documents) {
    const std::string kind = StringAt(document, "kind");
    const Json& metadata = At(document, "metadata");
    std::string ns = StringAt(metadata, "namespace");
    if (ns.empty()) ns = std::string(default_namespace);
    std::string name = StringAt(metadata, "name");
    if (name.empty()) name = StringAt(metadata, "generateName");
    auto refuse = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " ", ns, "/", name, ": ", what));
    };
    if (kind == "Pod" || IsWorkloadKind(kind)) {
      Json pod = kind == "Pod" ? document : At(At(document, "spec"), "template");
      if (!pod.is_object()) return refuse("spec.template is missing or not a mapping");
      absl::StatusOr<InjectionOutcome> outcome = injector.InjectPod(pod, ns, kind == "Pod" ? "" : name);
      if (!outcome.ok()) return refuse(outcome.status().message());
      if (outcome->injected) {
        if (kind == "Pod") {
          document = std::move(pod);
        } else {
          document["spec"]["template"] = std::move(pod);
        }
      }
    }
    absl::StatusOr<std::string> text = EmitYamlDocument(document);
    if (!text.ok()) return refuse(text.status().message());
    if (!out.empty()) out += "---\n";
    out += *text;
  }
  return out;
}

}  // namespace tandem::injection
