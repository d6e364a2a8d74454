#ifndef TANDEM_CONTROLPLANE_INJECTION_INJECTOR_H_
#define TANDEM_CONTROLPLANE_INJECTION_INJECTOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/injection/yaml_json.h"

namespace tandem::injection {

// The sidecar container whose presence marks a pod as injected.
inline constexpr absl::string_view kProxyContainerName = "tandem-proxy";

struct InjectorOptions {
  // The sidecar template (deploy/kubernetes/injection/sidecar-template.yaml) and the
  // name errors give it.
  std::string template_yaml;
  std::string template_name = "sidecar template";
  // One image holds tandem-proxy, tandem-agent and tandem-iptables.sh.
  std::string proxy_image = "tandem/proxy:dev";
  std::string ca_address = "tandem-ca.tandem-system.svc:15012";
  std::string ca_server_name = "tandem-ca.tandem-system.svc";
  // Pods here are never injected: the control plane must not depend on itself.
  std::string control_plane_namespace = "tandem-system";
};

// What InjectPod did.
struct InjectionOutcome {
  bool injected = false;
  std::string skip_reason;  // why not, when !injected
};

// Renders the sidecar template into pods: the one code path behind the admission
// webhook and `tandemctl kube-inject`. Immutable after Create(); any thread may call
// InjectPod concurrently.
class Injector {
 public:
  // Parses and checks the template (its keys and every {{placeholder}} in it).
  static absl::StatusOr<std::unique_ptr<Injector>> Create(InjectorOptions options);

  // Injects the sidecar into `pod`, an object with "metadata" and "spec" (a Pod, or a
  // workload's spec.template) in namespace `ns`, unless a skip rule applies: already
  // injected, the control plane's namespace, sidecar.tandem.dev/inject "false",
  // hostNetwork. kInvalidArgument (with a message naming the annotation, container or
  // field) for a pod it refuses; `pod` is then unspecified. `owner` names the workload
  // when the caller knows it (kube-inject: the Deployment); else it is derived from the
  // pod (DeriveWorkloadIdentity).
  absl::StatusOr<InjectionOutcome> InjectPod(Json& pod, absl::string_view ns,
                                             absl::string_view owner = {}) const;

 private:
  Injector(InjectorOptions options, Json template_tree)
      : options_(std::move(options)), template_(std::move(template_tree)) {}

  InjectorOptions options_;
  Json template_;
};

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_INJECTOR_H_
