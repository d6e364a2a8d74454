#ifndef TANDEM_CONTROLPLANE_INJECTION_WORKLOAD_IDENTITY_H_
#define TANDEM_CONTROLPLANE_INJECTION_WORKLOAD_IDENTITY_H_

#include <string>

#include "absl/strings/string_view.h"
#include "controlplane/injection/yaml_json.h"

namespace tandem::injection {

// The pod's own labels in Istio's standard metrics (istio_tcp_*), which the injector
// hands tandem-proxy as environment variables. Empty means unknown.
struct WorkloadIdentity {
  std::string name;                // ISTIO_META_WORKLOAD_NAME
  std::string app;                 // label app
  std::string version;             // label version
  std::string canonical_service;   // TANDEM_CANONICAL_SERVICE
  std::string canonical_revision;  // TANDEM_CANONICAL_REVISION
};

// Derives them the way Istio does from `pod` (a Pod or a workload's spec.template):
// - name: `owner` when the caller knows the workload (kube-inject: the Deployment);
//   else the controlling ownerReference, a ReplicaSet's name without its
//   pod-template-hash suffix (the Deployment); else metadata.name; else generateName
//   without its trailing "-".
// - canonical service: label service.istio.io/canonical-name, else
//   app.kubernetes.io/name, else app, else the name.
// - canonical revision: label service.istio.io/canonical-revision, else
//   app.kubernetes.io/version, else version, else "latest".
WorkloadIdentity DeriveWorkloadIdentity(const Json& pod, absl::string_view owner);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_WORKLOAD_IDENTITY_H_
