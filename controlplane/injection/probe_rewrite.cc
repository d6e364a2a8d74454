#include "controlplane/injection/probe_rewrite.h"

#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

struct ProbeKind {
  const char* field;
  const char* path_suffix;
};
constexpr ProbeKind kProbeKinds[] = {
    {"livenessProbe", "livez"},
    {"readinessProbe", "readyz"},
    {"startupProbe", "startupz"},
};

const Json* Find(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string StringOr(const Json& object, const char* key, std::string fallback) {
  const Json* value = Find(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>()
                                                : std::move(fallback);
}

// Resolves a probe's port (a number, or the name of one of the container's ports).
absl::StatusOr<int64_t> ResolvePort(const Json& container, const std::string& where,
                                    const Json* port) {
  if (port != nullptr && port->is_number_integer()) {
    int64_t number = port->get<int64_t>();
    if (number >= 1 && number <= 65535) return number;
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": port ", number, " is not in 1..65535"));
  }
  if (port == nullptr || !port->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": port must be a number or a port name"));
  }
  const std::string& name = port->get_ref<const std::string&>();
  if (const Json* ports = Find(container, "ports");
      ports != nullptr && ports->is_array()) {
    for (const Json& p : *ports) {
      const Json* container_port = Find(p, "containerPort");
      if (StringOr(p, "name", "") == name && container_port != nullptr &&
          container_port->is_number_integer()) {
        return ResolvePort(container, where, container_port);
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": port \"", absl::CHexEscape(name),
                   "\" is not a port name of the container"));
}

// Returns the agent's copy of one probe handler, or null for handlers that stay.
absl::StatusOr<Json> AgentProbe(const Json& container, const std::string& where,
                                const Json& probe) {
  Json handler = Json::object();
  if (const Json* http = Find(probe, "httpGet")) {
    absl::StatusOr<int64_t> port = ResolvePort(container, where, Find(*http, "port"));
    if (!port.ok()) return port.status();
    Json headers = Json::array();
    if (const Json* h = Find(*http, "httpHeaders"); h != nullptr && h->is_array()) {
      for (const Json& header : *h) {
        headers.push_back(Json{{"name", StringOr(header, "name", "")},
                               {"value", StringOr(header, "value", "")}});
      }
    }
    std::string scheme = StringOr(*http, "scheme", "HTTP");
    if (scheme != "HTTP" && scheme != "HTTPS") {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": scheme \"", absl::CHexEscape(scheme), "\" is not HTTP or HTTPS"));
    }
    handler["httpGet"] = Json{{"path", StringOr(*http, "path", "/")},
                              {"port", *port},
                              {"scheme", scheme},
                              {"host", StringOr(*http, "host", "")},
                              {"httpHeaders", std::move(headers)}};
  } else if (const Json* tcp = Find(probe, "tcpSocket")) {
    absl::StatusOr<int64_t> port = ResolvePort(container, where, Find(*tcp, "port"));
    if (!port.ok()) return port.status();
    handler["tcpSocket"] = Json{{"port", *port}};
    // The agent dials loopback unless the probe names a host, as the kubelet would.
    if (std::string host = StringOr(*tcp, "host", ""); !host.empty()) {
      handler["tcpSocket"]["host"] = host;
    }
  } else if (const Json* grpc = Find(probe, "grpc")) {
    // grpc.port is a number only (no names) in the Kubernetes API.
    const Json* port_field = Find(*grpc, "port");
    if (port_field != nullptr && !port_field->is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": grpc port must be a number"));
    }
    absl::StatusOr<int64_t> port = ResolvePort(container, where, port_field);
    if (!port.ok()) return port.status();
    handler["grpc"] = Json{{"port", *port}, {"service", StringOr(*grpc, "service", "")}};
  } else {
    return Json();  // exec (or nothing): kubelet runs it in the container as before
  }
  const Json* timeout = Find(probe, "timeoutSeconds");
  handler["timeoutSeconds"] =
      timeout != nullptr && timeout->is_number_integer() ? timeout->get<int64_t>() : 1;
  return handler;
}

}  // namespace

absl::StatusOr<Json> RewriteAppProbes(Json& containers) {
  Json app_probes = Json::object();
  if (!containers.is_array()) return app_probes;
  for (Json& container : containers) {
    if (!container.is_object()) continue;
    const std::string name = StringOr(container, "name", "");
    for (const ProbeKind& kind : kProbeKinds) {
      auto probe = container.find(kind.field);
      if (probe == container.end() || !probe->is_object()) continue;
      std::string where =
          absl::StrCat("container \"", absl::CHexEscape(name), "\": ", kind.field);
      absl::StatusOr<Json> original = AgentProbe(container, where, *probe);
      if (!original.ok()) return original.status();
      if (original->is_null()) continue;
      std::string path = absl::StrCat("/app-health/", name, "/", kind.path_suffix);
      // Timing fields stay; the handler becomes the agent's endpoint.
      Json rewritten = Json::object();
      rewritten["httpGet"] = Json{{"path", path}, {"port", kAppHealthPort}};
      for (const auto& [key, value] : probe->items()) {
        if (key != "httpGet" && key != "tcpSocket" && key != "grpc")
          rewritten[key] = value;
      }
      *probe = std::move(rewritten);
      app_probes[path] = *std::move(original);
    }
  }
  return app_probes;
}

}  // namespace tandem::injection
