#include "controlplane/injection/probe_rewrite.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/support/injection_test_util.h"

namespace tandem::injection {
namespace {

using testing::Yaml;

TEST(ProbeRewriteTest, MovesHttpTcpAndGrpcProbesToTheAgent) {
  Json containers = Yaml(R"(
- name: web
  ports: [{name: http, containerPort: 8080}, {name: grpc, containerPort: 9000}]
  readinessProbe:
    httpGet:
      path: /ready
      port: http
      httpHeaders: [{name: X, value: "y"}]
    periodSeconds: 3
  livenessProbe:
    tcpSocket: {port: 8080}
    timeoutSeconds: 5
  startupProbe:
    grpc: {port: 9000}
    failureThreshold: 30
)");
  absl::StatusOr<Json> probes = RewriteAppProbes(containers);
  ASSERT_TRUE(probes.ok()) << probes.status();
  EXPECT_EQ(*probes, Json::parse(R"({
    "/app-health/web/livez": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 5},
    "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP",
        "host": "", "httpHeaders": [{"name": "X", "value": "y"}]}, "timeoutSeconds": 1},
    "/app-health/web/startupz": {"grpc": {"port": 9000, "service": ""}, "timeoutSeconds": 1}
  })"));
  EXPECT_EQ(containers[0]["readinessProbe"], Json::parse(R"(
    {"httpGet": {"path": "/app-health/web/readyz", "port": 15020}, "periodSeconds": 3})"));
  EXPECT_EQ(containers[0]["livenessProbe"], Json::parse(R"(
    {"httpGet": {"path": "/app-health/web/livez", "port": 15020}, "timeoutSeconds": 5})"));
  EXPECT_EQ(containers[0]["startupProbe"], Json::parse(R"(
    {"httpGet": {"path": "/app-health/web/startupz", "port": 15020}, "failureThreshold": 30})"));
}

TEST(ProbeRewriteTest, KeepsHttpsSchemeHostAndGrpcService) {
  Json containers = Yaml(R"(
- name: api
  readinessProbe:
    httpGet: {port: 8443, scheme: HTTPS, host: 127.0.0.1}
  livenessProbe:
    grpc: {port: 9000, service: health}
  startupProbe:
    tcpSocket: {port: 8443, host: 10.0.0.1}
)");
  absl::StatusOr<Json> probes = RewriteAppProbes(containers);
  ASSERT_TRUE(probes.ok()) << probes.status();
  EXPECT_EQ((*probes)["/app-health/api/readyz"]["httpGet"], Json::parse(R"(
    {"path": "/", "port": 8443, "scheme": "HTTPS", "host": "127.0.0.1", "httpHeaders": []})"));
  EXPECT_EQ((*probes)["/app-health/api/livez"]["grpc"],
            Json::parse(R"({"port": 9000, "service": "health"})"));
  EXPECT_EQ((*probes)["/app-health/api/startupz"]["tcpSocket"],
            Json::parse(R"({"port": 8443, "host": "10.0.0.1"})"));
}

TEST(ProbeRewriteTest, LeavesExecProbesAlone) {
  Json containers = Yaml(R"(
- name: db
  livenessProbe:
    exec: {command: [pg_isready]}
)");
  Json before = containers;
  absl::StatusOr<Json> probes = RewriteAppProbes(containers);
  ASSERT_TRUE(probes.ok()) << probes.status();
  EXPECT_TRUE(probes->empty());
  EXPECT_EQ(containers, before);
}

TEST(ProbeRewriteTest, CoversEveryContainer) {
  Json containers = Yaml(R"(
- {name: a, readinessProbe: {tcpSocket: {port: 1}}}
- {name: b, readinessProbe: {tcpSocket: {port: 2}}}
)");
  absl::StatusOr<Json> probes = RewriteAppProbes(containers);
  ASSERT_TRUE(probes.ok()) << probes.status();
  EXPECT_EQ((*probes)["/app-health/a/readyz"]["tcpSocket"]["port"], 1);
  EXPECT_EQ((*probes)["/app-health/b/readyz"]["tcpSocket"]["port"], 2);
}

TEST(ProbeRewriteTest, RefusesBadPortsNamingContainerAndProbe) {
  struct Case {
    std::string container;
    std::string message;
  };
  const Case kCases[] = {
      {"{name: web, readinessProbe: {httpGet: {port: http}}}",
       R"(container "web": readinessProbe: port "http" is not a port name of the container)"},
      {"{name: web, ports: [{name: metrics, containerPort: 9090}], livenessProbe: "
       "{tcpSocket: {port: http}}}",
       R"(container "web": livenessProbe: port "http" is not a port name of the container)"},
      {"{name: web, startupProbe: {httpGet: {port: 70000}}}",
       R"(container "web": startupProbe: port 70000 is not in 1..65535)"},
      {"{name: web, readinessProbe: {httpGet: {path: /}}}",
       R"(container "web": readinessProbe: port must be a number or a port name)"},
      {"{name: web, readinessProbe: {httpGet: {port: 80, scheme: https}}}",
       R"(container "web": readinessProbe: scheme "https" is not HTTP or HTTPS)"},
      {"{name: web, readinessProbe: {grpc: {port: grpc}}}",
       R"(container "web": readinessProbe: grpc port must be a number)"},
  };
  for (const Case& c : kCases) {
    Json containers = Json::array({Yaml(c.container)});
    absl::StatusOr<Json> probes = RewriteAppProbes(containers);
    EXPECT_EQ(probes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(probes.status().message(), c.message);
  }
}

}  // namespace
}  // namespace tandem::injection
