#include "controlplane/injection/injector.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/injection/annotations.h"
#include "controlplane/injection/probe_rewrite.h"
#include "controlplane/injection/workload_identity.h"

namespace tandem::injection {
namespace {

constexpr absl::string_view kTemplateKeys[] = {
    "podAnnotations", "initContainers", "sidecars", "classicProxyLifecycle", "volumes"};

// Replaces every {{name}} in `node`: a string that is exactly one placeholder becomes
// its value (any JSON type); a placeholder inside a longer string needs a string value.
absl::Status Substitute(Json& node, const Json& values) {
  if (node.is_structured()) {
    for (Json& child : node) {
      if (absl::Status s = Substitute(child, values); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (!node.is_string()) return absl::OkStatus();
  std::string text = node.get<std::string>();
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    size_t close = text.find("}}", open);
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unclosed placeholder in \"", absl::CHexEscape(text), "\""));
    }
    std::string name = text.substr(open + 2, close - open - 2);
    auto value = values.find(name);
    if (value == values.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown placeholder {{", name, "}}"));
    }
    if (open == 0 && close + 2 == text.size()) {
      node = *value;
      return absl::OkStatus();
    }
    if (!value->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "placeholder {{", name, "}} is not a string; it must be a whole value"));
    }
    out += text.substr(pos, open - pos);
    out += value->get<std::string>();
    pos = close + 2;
  }
  if (pos > 0) node = out + text.substr(pos);
  return absl::OkStatus();
}

std::string StringField(const Json& object, const char* key, std::string fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

bool HasContainerNamed(const Json& spec, absl::string_view name) {
  for (const char* list : {"containers", "initContainers"}) {
    auto it = spec.find(list);
    if (it == spec.end() || !it->is_array()) continue;
    for (const Json& c : *it) {
      if (StringField(c, "name", "") == name) return true;
    }
  }
  return false;
}

std::vector<std::string> Names(const Json& items) {
  std::vector<std::string> names;
  for (const Json& item : items) names.push_back(StringField(item, "name", ""));
  return names;
}

// The app's own Prometheus scrape, recorded before the pod's prometheus.io/* point at
// the proxy's merged page (Istio's ISTIO_PROMETHEUS_ANNOTATIONS); empty: none.
struct AppScrape {
  bool opted_out = false;  // prometheus.io/scrape: "false": the pod keeps its own
  std::string port;
  std::string path;
};

absl::StatusOr<AppScrape> AppScrapeOf(const Json& annotations) {
  AppScrape scrape;
  std::string wanted = StringField(annotations, "prometheus.io/scrape", "");
  if (wanted == "false") {
    scrape.opted_out = true;
    return scrape;
  }
  std::string port = StringField(annotations, "prometheus.io/port", "");
  if (port.empty()) return scrape;
  int number = 0;
  if (!absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "annotation prometheus.io/port: \"", port, "\": must be a port number, 1-65535"));
  }
  std::string path = StringField(annotations, "prometheus.io/path", "/metrics");
  bool printable = !path.empty() && path[0] == '/';
  for (char c : path) printable = printable && c > ' ' && c < 0x7f;
  if (!printable) {
    return absl::InvalidArgumentError(
        absl::StrCat("annotation prometheus.io/path: \"", path,
                     "\": must start with / and hold no space or control character"));
  }
  scrape.port = absl::StrCat(number);
  scrape.path = path;
  return scrape;
}

// The template's values for one pod.
Json Values(const InjectorOptions& options, const InjectionSettings& settings,
            const std::string& service_account, const Json& app_probes,
            const WorkloadIdentity& workload, const AppScrape& app_scrape) {
  Json resources = {
      {"requests", {{"cpu", settings.proxy_cpu}, {"memory", settings.proxy_memory}}}};
  Json limits = Json::object();
  if (!settings.proxy_cpu_limit.empty()) limits["cpu"] = settings.proxy_cpu_limit;
  if (!settings.proxy_memory_limit.empty())
    limits["memory"] = settings.proxy_memory_limit;
  if (!limits.empty()) resources["limits"] = std::move(limits);
  return {
      {"proxy_image", options.proxy_image},
      {"ca_address", options.ca_address},
      {"ca_server_name", options.ca_server_name},
      {"service_account", service_account},
      {"exclude_inbound_ports", settings.exclude_inbound_ports},
      {"include_inbound_ports", settings.include_inbound_ports},
      {"exclude_outbound_ports", settings.exclude_outbound_ports},
      {"exclude_outbound_cidrs", settings.exclude_outbound_cidrs},
      {"inbound_mode", settings.inbound_mode},
      {"proxy_resources", std::move(resources)},
      {"app_probes", DumpJson(app_probes)},
      {"workload_name", workload.name},
      {"app", workload.app},
      {"version", workload.version},
      {"canonical_service", workload.canonical_service},
      {"canonical_revision", workload.canonical_revision},
      {"app_metrics_port", app_scrape.port},
      {"app_metrics_path", app_scrape.path},
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<Injector>> Injector::Create(InjectorOptions options) {
  auto error = [&options](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(options.template_name, ": ", what));
  };
  absl::StatusOr<std::vector<Json>> documents =
      ParseYamlDocuments(options.template_yaml, options.template_name);
  if (!documents.ok()) return documents.status();
  if (documents->size() != 1 || !(*documents)[0].is_object()) {
    return error("must be one YAML document holding a mapping");
  }
  Json tree = std::move((*documents)[0]);
  for (const auto& [key, value] : tree.items()) {
    bool known = false;
    for (absl::string_view k : kTemplateKeys) known |= key == k;
    if (!known) {
      return error(absl::StrCat("unknown key ", key,
                                " (allowed: ", absl::StrJoin(kTemplateKeys, ", "), ")"));
    }
  }
  for (const char* list : {"initContainers", "sidecars", "volumes"}) {
    if (!tree.contains(list)) tree[list] = Json::array();
    if (!tree[list].is_array()) return error(absl::StrCat(list, " must be a list"));
  }
  if (!tree.contains("podAnnotations")) tree["podAnnotations"] = Json::object();
  if (!tree["podAnnotations"].is_object())
    return error("podAnnotations must be a mapping");
  for (const auto& [key, value] : tree["podAnnotations"].items()) {
    if (!value.is_string())
      return error(absl::StrCat("podAnnotations.", key, " must be a string"));
  }
  bool has_proxy = false;
  for (const Json& sidecar : tree["sidecars"]) {
    if (!sidecar.is_object()) return error("every sidecar must be a mapping");
    has_proxy |= StringField(sidecar, "name", "") == kProxyContainerName;
  }
  if (!has_proxy)
    return error(absl::StrCat("sidecars must include ", kProxyContainerName));
  if (tree.contains("classicProxyLifecycle") &&
      !tree["classicProxyLifecycle"].is_object()) {
    return error("classicProxyLifecycle must be a mapping");
  }
  // Every placeholder must be one the injector fills.
  Json probe = tree;
  if (absl::Status s =
          Substitute(probe, Values(options, InjectionSettings(), "default",
                                   Json::object(), WorkloadIdentity(), AppScrape()));
      !s.ok()) {
    return error(s.message());
  }
  return std::unique_ptr<Injector>(new Injector(std::move(options), std::move(tree)));
}

absl::StatusOr<InjectionOutcome> Injector::InjectPod(Json& pod, absl::string_view ns,
                                                     absl::string_view owner) const {
  if (!pod.is_object()) return absl::InvalidArgumentError("the pod is not a mapping");
  auto metadata = pod.find("metadata");
  if (metadata != pod.end() && !metadata->is_object()) {
    return absl::InvalidArgumentError("metadata is not a mapping");
  }
  auto spec_it = pod.find("spec");
  if (spec_it == pod.end() || !spec_it->is_object()) {
    return absl::InvalidArgumentError("spec is missing or not a mapping");
  }
  Json& spec = *spec_it;
  Json annotations;
  if (metadata != pod.end() && metadata->contains("annotations")) {
    annotations = (*metadata)["annotations"];
  }

  if ((annotations.is_object() && annotations.contains(std::string(kStatusAnnotation))) ||
      HasContainerNamed(spec, kProxyContainerName)) {
    return InjectionOutcome{false, "already injected"};
  }
  if (ns == options_.control_plane_namespace) {
    return InjectionOutcome{false, absl::StrCat("in the control plane's namespace ", ns)};
  }
  absl::StatusOr<InjectionSettings> settings = ParseInjectionAnnotations(annotations);
  if (!settings.ok()) return settings.status();
  if (!settings->inject) {
    return InjectionOutcome{false, absl::StrCat(kInjectAnnotation, " is \"false\"")};
  }
  if (auto host = spec.find("hostNetwork"); host != spec.end() && *host == true) {
    return InjectionOutcome{false, "uses the host's network (hostNetwork: true)"};
  }
  absl::StatusOr<AppScrape> app_scrape = AppScrapeOf(annotations);
  if (!app_scrape.ok()) return app_scrape.status();
  {
    auto containers = spec.find("containers");
    if (containers == spec.end() || !containers->is_array() || containers->empty()) {
      return absl::InvalidArgumentError("spec.containers is missing or empty");
    }
  }
  for (const char* list : {"initContainers", "volumes"}) {
    if (!spec.contains(list)) spec[list] = Json::array();
    if (!spec[list].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat("spec.", list, " is not a list"));
    }
  }
  // Looked up after the insertions above: an ordered_json object is a vector, and
  // inserting a key moves its elements.
  Json* containers = &spec["containers"];

  Json app_probes = Json::object();
  if (settings->rewrite_app_probes) {
    absl::StatusOr<Json> probes = RewriteAppProbes(*containers);
    if (!probes.ok()) return probes.status();
    app_probes = *std::move(probes);
  }
  std::string service_account = StringField(spec, "serviceAccountName", "");
  if (service_account.empty())
    service_account = StringField(spec, "serviceAccount", "default");

  Json rendered = template_;
  if (absl::Status s =
          Substitute(rendered, Values(options_, *settings, service_account, app_probes,
                                      DeriveWorkloadIdentity(pod, owner), *app_scrape));
      !s.ok()) {
    return absl::InternalError(absl::StrCat(options_.template_name, ": ", s.message()));
  }

  const bool native = settings->sidecar_mode == SidecarMode::kNative;
  Json sidecars = rendered["sidecars"];
  for (Json& sidecar : sidecars) {
    if (native) {
      // A restartable init container (Kubernetes 1.28+): started before the app, held
      // until its startupProbe passes, stopped after the app.
      sidecar["restartPolicy"] = "Always";
    } else if (StringField(sidecar, "name", "") == kProxyContainerName &&
               rendered.contains("classicProxyLifecycle")) {
      // The kubelet starts containers in order and waits for each postStart hook, so a
      // hook that returns once the proxy is ready holds the app containers until then.
      sidecar["lifecycle"] = rendered["classicProxyLifecycle"];
    }
  }
  for (const Json& sidecar : sidecars) {
    if (HasContainerNamed(spec, StringField(sidecar, "name", ""))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the pod already has a container named ", StringField(sidecar, "name", "")));
    }
  }
  Json init = rendered["initContainers"];
  if (native) {
    for (Json& s : sidecars) init.push_back(s);
  }
  for (Json& c : spec["initContainers"]) init.push_back(std::move(c));
  spec["initContainers"] = std::move(init);
  if (!native) {
    Json all = sidecars;
    for (Json& c : *containers) all.push_back(std::move(c));
    *containers = std::move(all);
  }
  for (const Json& v : rendered["volumes"]) spec["volumes"].push_back(v);

  if (!annotations.is_object()) annotations = Json::object();
  if (!app_scrape->opted_out) {
    // The app's scrape is recorded (app_metrics_*): the template's prometheus.io/*,
    // the proxy's merged page, replace it.
    for (const char* key :
         {"prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"}) {
      annotations.erase(key);
    }
  }
  for (const auto& [key, value] : rendered["podAnnotations"].items()) {
    if (!annotations.contains(key)) annotations[key] = value;
  }
  Json status = {{"mode", native ? "native" : "classic"},
                 {"initContainers", Names(rendered["initContainers"])},
                 {"sidecars", Names(sidecars)},
                 {"volumes", Names(rendered["volumes"])}};
  annotations[std::string(kStatusAnnotation)] = DumpJson(status);
  if (pod.contains("metadata")) {
    pod["metadata"]["annotations"] = std::move(annotations);
  } else {
    // Metadata first, where a reader of kube-inject's output looks for it.
    Json with_metadata = {{"metadata", {{"annotations", std::move(annotations)}}}};
    for (auto& [key, value] : pod.items()) with_metadata[key] = std::move(value);
    pod = std::move(with_metadata);
  }
  return InjectionOutcome{true, ""};
}

}  // namespace tandem::injection
