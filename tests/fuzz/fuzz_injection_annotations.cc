// Fuzzes the annotation parser and the injector's decisions on them. Input: lines of
// name=value (a name without '/' gets the sidecar.tandem.dev/ prefix). Refusals are
// kInvalidArgument; an injected pod is left alone by a second injection.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "controlplane/injection/annotations.h"
#include "tests/fuzz/injection_fuzz_util.h"

using tandem::injection::Json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Json annotations = Json::object();
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first.find('/') == std::string::npos) {
      kv.first = std::string(tandem::injection::kAnnotationPrefix) + kv.first;
    }
    annotations[kv.first] = kv.second;
  }
  absl::StatusOr<tandem::injection::InjectionSettings> settings =
      tandem::injection::ParseInjectionAnnotations(annotations);
  if (!settings.ok() && settings.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }
  if (settings.ok() &&
      (!absl::StartsWith(settings->exclude_inbound_ports,
                         tandem::injection::kSidecarInboundPorts) ||
       (settings->inbound_mode != "" && settings->inbound_mode != "STRICT" &&
        settings->inbound_mode != "PERMISSIVE"))) {
    std::abort();
  }
  Json pod = {{"metadata", {{"annotations", annotations}}},
              {"spec",
               {{"containers",
                 {{{"name", "web"},
                   {"ports", {{{"name", "http"}, {"containerPort", 8080}}}},
                   {"readinessProbe", {{"httpGet", {{"port", "http"}}}}}}}}}}};
  const auto& injector = tandem::injection::FuzzInjector();
  absl::StatusOr<tandem::injection::InjectionOutcome> outcome =
      injector.InjectPod(pod, "ns");
  // The injector refuses what the parser refuses (unless the status annotation already
  // marks the pod injected: then nothing is parsed).
  if (!annotations.contains(std::string(tandem::injection::kStatusAnnotation)) &&
      settings.ok() != outcome.ok()) {
    std::abort();
  }
  if (!outcome.ok() || !outcome->injected) return 0;
  Json once = pod;
  absl::StatusOr<tandem::injection::InjectionOutcome> again =
      injector.InjectPod(pod, "ns");
  if (!again.ok() || again->injected || pod != once) std::abort();
  return 0;
}
