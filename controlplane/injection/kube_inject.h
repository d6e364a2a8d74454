#ifndef TANDEM_CONTROLPLANE_INJECTION_KUBE_INJECT_H_
#define TANDEM_CONTROLPLANE_INJECTION_KUBE_INJECT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/injection/injector.h"

namespace tandem::injection {

// Injects the sidecar into every Pod, Deployment, StatefulSet, DaemonSet, Job and
// ReplicaSet of a multi-document YAML stream (`source` names it in errors) and returns
// the stream as YAML, documents separated by "---"; other kinds, and pods a skip rule
// leaves alone, come out as they went in (re-emitted). An object without
// metadata.namespace is in `default_namespace`. kInvalidArgument "<Kind> <ns>/<name>:
// <problem>" for an object the injector refuses; the YAML parser's errors name the line.
absl::StatusOr<std::string> KubeInject(absl::string_view yaml, absl::string_view source,
                                       absl::string_view default_namespace,
                                       const Injector& injector);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_KUBE_INJECT_H_
