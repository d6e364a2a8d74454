#ifndef TANDEM_CONTROLPLANE_REVOCATION_CONFIGMAP_REVOCATION_BACKEND_H_
#define TANDEM_CONTROLPLANE_REVOCATION_CONFIGMAP_REVOCATION_BACKEND_H_

#include <string>

#include "controlplane/kube/kube_client.h"
#include "controlplane/revocation/revocation_backend.h"

namespace tandem::controlplane {

// The revocation list in a ConfigMap every replica of tandem-ca shares (key
// `revocations.jsonl`, the file backend's format). Update is KubeClient::Update: GET,
// edit, PUT with the resourceVersion read (POST when absent), and a 409 from a replica
// that wrote first starts again from its list, so two revocations made at once through
// two replicas both stay. Threading: any thread (KubeClient is thread-safe).
class ConfigMapRevocationBackend : public RevocationBackend {
 public:
  static constexpr char kKey[] = "revocations.jsonl";
  // `client` outlives the backend.
  ConfigMapRevocationBackend(const KubeClient* client, std::string ns, std::string name);

  absl::StatusOr<std::string> Load() override;
  absl::StatusOr<std::string> Update(const Edit& edit) override;
  std::string name() const override;

  // The list in a ConfigMap as the API returns it ("" without the key). Any thread.
  static std::string ListOf(const nlohmann::json& configmap);

 private:
  const KubeClient* client_;
  const std::string ns_;
  const std::string name_;
  const std::string collection_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_CONFIGMAP_REVOCATION_BACKEND_H_
