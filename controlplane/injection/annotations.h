#ifndef TANDEM_CONTROLPLANE_INJECTION_ANNOTATIONS_H_
#define TANDEM_CONTROLPLANE_INJECTION_ANNOTATIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/injection/yaml_json.h"

namespace tandem::injection {

// Every pod annotation injection reads or writes. docs/injection.md has the same table;
// nothing else in the code spells these names.
inline constexpr absl::string_view kAnnotationPrefix = "sidecar.tandem.dev/";
inline constexpr absl::string_view kInjectAnnotation = "sidecar.tandem.dev/inject";
inline constexpr absl::string_view kStatusAnnotation = "sidecar.tandem.dev/status";
inline constexpr absl::string_view kExcludeInboundPortsAnnotation =
    "sidecar.tandem.dev/exclude-inbound-ports";
inline constexpr absl::string_view kIncludeInboundPortsAnnotation =
    "sidecar.tandem.dev/include-inbound-ports";
inline constexpr absl::string_view kExcludeOutboundPortsAnnotation =
    "sidecar.tandem.dev/exclude-outbound-ports";
inline constexpr absl::string_view kExcludeOutboundCidrsAnnotation =
    "sidecar.tandem.dev/exclude-outbound-cidrs";
inline constexpr absl::string_view kInboundModeAnnotation =
    "sidecar.tandem.dev/inbound-mode";
inline constexpr absl::string_view kProxyCpuAnnotation = "sidecar.tandem.dev/proxy-cpu";
inline constexpr absl::string_view kProxyMemoryAnnotation =
    "sidecar.tandem.dev/proxy-memory";
inline constexpr absl::string_view kProxyCpuLimitAnnotation =
    "sidecar.tandem.dev/proxy-cpu-limit";
inline constexpr absl::string_view kProxyMemoryLimitAnnotation =
    "sidecar.tandem.dev/proxy-memory-limit";
inline constexpr absl::string_view kSidecarModeAnnotation =
    "sidecar.tandem.dev/sidecar-mode";
inline constexpr absl::string_view kRewriteProbesAnnotation =
    "sidecar.tandem.dev/rewrite-app-probes";

inline constexpr absl::string_view kAllAnnotations[] = {
    kInjectAnnotation,
    kStatusAnnotation,
    kExcludeInboundPortsAnnotation,
    kIncludeInboundPortsAnnotation,
    kExcludeOutboundPortsAnnotation,
    kExcludeOutboundCidrsAnnotation,
    kInboundModeAnnotation,
    kProxyCpuAnnotation,
    kProxyMemoryAnnotation,
    kProxyCpuLimitAnnotation,
    kProxyMemoryLimitAnnotation,
    kSidecarModeAnnotation,
    kRewriteProbesAnnotation,
};

// The sidecar's own ports, never captured inbound: admin 15000, outbound 15001,
// inbound 15006, the agent's metrics 15019 and app-health 15020, proxy health 15021,
// proxy metrics 15090.
inline constexpr absl::string_view kSidecarInboundPorts =
    "15000,15001,15006,15019,15020,15021,15090";

enum class SidecarMode { kNative, kClassic };

// What a pod's annotations ask of injection, every value checked. Defaults are what a
// pod without annotations gets (docs/injection.md).
struct InjectionSettings {
  bool inject = true;
  // Comma-separated lists, as tandem-iptables.sh takes them.
  std::string exclude_inbound_ports = std::string(kSidecarInboundPorts);
  std::string include_inbound_ports = "*";
  std::string exclude_outbound_ports;
  std::string exclude_outbound_cidrs;
  // "" = the proxy config's default_inbound_mode decides.
  std::string inbound_mode;
  std::string proxy_cpu = "10m";
  std::string proxy_memory = "16Mi";
  std::string proxy_cpu_limit;  // "" = no limit
  std::string proxy_memory_limit = "256Mi";
  SidecarMode sidecar_mode = SidecarMode::kNative;
  bool rewrite_app_probes = true;
};

// Reads the pod's annotations (a JSON object, or null when it has none). Annotations
// outside kAnnotationPrefix are ignored; inside it, an unknown name or a bad value is
// refused with kInvalidArgument "annotation <name>: <value quoted>: <why>".
// kStatusAnnotation is not read here (the injector checks it).
absl::StatusOr<InjectionSettings> ParseInjectionAnnotations(const Json& annotations);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_ANNOTATIONS_H_
