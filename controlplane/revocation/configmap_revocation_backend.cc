#include "controlplane/revocation/configmap_revocation_backend.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem::controlplane {

ConfigMapRevocationBackend::ConfigMapRevocationBackend(const KubeClient* client,
                                                       std::string ns, std::string name)
    : client_(client),
      ns_(std::move(ns)),
      name_(std::move(name)),
      collection_(absl::StrCat("/api/v1/namespaces/", ns_, "/configmaps")) {}

std::string ConfigMapRevocationBackend::name() const {
  return absl::StrCat("configmap ", ns_, "/", name_);
}

std::string ConfigMapRevocationBackend::ListOf(const nlohmann::json& configmap) {
  if (!configmap.is_object()) return "";
  auto data = configmap.find("data");
  if (data == configmap.end() || !data->is_object()) return "";
  auto list = data->find(kKey);
  return list != data->end() && list->is_string() ? list->get<std::string>() : "";
}

absl::StatusOr<std::string> ConfigMapRevocationBackend::Load() {
  absl::StatusOr<nlohmann::json> stored = client_->Update(
      collection_, name_, [](nlohmann::json*) -> absl::StatusOr<bool> { return false; });
  if (!stored.ok()) return stored.status();
  return ListOf(*stored);
}

absl::StatusOr<std::string> ConfigMapRevocationBackend::Update(const Edit& edit) {
  absl::StatusOr<nlohmann::json> stored = client_->Update(
      collection_, name_, [&](nlohmann::json* configmap) -> absl::StatusOr<bool> {
        const std::string current = ListOf(*configmap);
        absl::StatusOr<std::string> next = edit(current);
        if (!next.ok()) return next.status();
        if (*next == current) return false;
        if (configmap->is_null()) {
          *configmap = {{"apiVersion", "v1"},
                        {"kind", "ConfigMap"},
                        {"metadata",
                         {{"name", name_},
                          {"namespace", ns_},
                          {"labels", {{"app.kubernetes.io/managed-by", "tandem-ca"}}}}}};
        }
        (*configmap)["data"][kKey] = *next;
        return true;
      });
  if (!stored.ok()) return stored.status();
  return ListOf(*stored);
}

}  // namespace tandem::controlplane
