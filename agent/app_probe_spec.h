#ifndef TANDEM_AGENT_APP_PROBE_SPEC_H_
#define TANDEM_AGENT_APP_PROBE_SPEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::agent {

// One Kubernetes probe of an app container, as the pod spec gave it to the kubelet
// before the injector pointed the kubelet at the agent instead. The agent runs it over
// loopback (its uid's traffic is never captured) with the kubelet's semantics.
struct AppProbeSpec {
  enum class Kind { kHttpGet, kTcpSocket, kGrpc };
  Kind kind = Kind::kTcpSocket;
  std::string container;  // from the path: /app-health/<container>/<probe>
  std::string probe;      // "livez", "readyz" or "startupz"
  std::string host;       // an IP literal (IPv6 without brackets); never empty
  uint16_t port = 0;
  absl::Duration timeout = absl::Seconds(1);  // timeoutSeconds
  // httpGet only.
  bool https = false;      // scheme HTTPS: TLS, the server's certificate unchecked
  std::string path = "/";  // request target, query included
  std::vector<std::pair<std::string, std::string>> headers;  // httpHeaders, in order
  // grpc only: the service name asked of grpc.health.v1.Health/Check ("" = server).
  std::string grpc_service;
};

// The probes the agent serves, by HTTP path ("/app-health/web/readyz").
using AppProbeTable = std::map<std::string, AppProbeSpec, std::less<>>;

// Parses the TANDEM_APP_PROBES environment variable the injector writes: a JSON object
// from path to a probe with exactly one of httpGet {path, port, scheme, host,
// httpHeaders}, tcpSocket {port, host}, grpc {port, service}, and an optional
// timeoutSeconds (default 1, as the kubelet's). Ports are numbers (the injector
// resolved named ones); an empty host means 127.0.0.1.
//
// The pod spec is the source, so the input is checked, not trusted: anything else is
// InvalidArgument naming the path and the field, e.g.
//   "/app-health/web/readyz": httpGet.port: must be an integer 1..65535
// (unknown fields, duplicate keys, hosts that are not IP literals, header names that
// are not HTTP tokens, values with line breaks, nesting deeper than the format).
absl::StatusOr<AppProbeTable> ParseAppProbes(std::string_view json);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_APP_PROBE_SPEC_H_
