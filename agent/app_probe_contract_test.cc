// The injector's TANDEM_APP_PROBES is the agent's input: what RewriteAppProbes writes,
// and every value in the injector's golden output, parses into the probes the pod had.
#include <functional>
#include <string>

#include "agent/app_probe_spec.h"
#include "controlplane/injection/probe_rewrite.h"
#include "controlplane/injection/yaml_json.h"
#include "gtest/gtest.h"
#include "tests/support/injection_test_util.h"

namespace tandem::agent {
namespace {

using injection::Json;

TEST(AppProbeContractTest, AgentReadsWhatTheProbeRewriteWrites) {
  Json containers = injection::testing::Yaml(R"(
- name: web
  ports: [{name: http, containerPort: 8080}]
  readinessProbe:
    httpGet:
      path: /ready
      port: http
      httpHeaders: [{name: X-Probe, value: "1"}]
    timeoutSeconds: 3
  livenessProbe:
    tcpSocket: {port: 8081}
  startupProbe:
    grpc: {port: 9000, service: shop.Cart}
- name: api
  readinessProbe:
    httpGet: {port: 8443, scheme: HTTPS, host: 127.0.0.1}
  livenessProbe:
    exec: {command: ["true"]}
)");
  absl::StatusOr<Json> probes = injection::RewriteAppProbes(containers);
  ASSERT_TRUE(probes.ok()) << probes.status();
  std::string env = injection::DumpJson(*probes);
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(env);
  ASSERT_TRUE(table.ok()) << table.status() << "\n" << env;
  ASSERT_EQ(table->size(), 4u) << env;  // the exec probe stays with the kubelet

  const AppProbeSpec& ready = table->at("/app-health/web/readyz");
  EXPECT_EQ(ready.kind, AppProbeSpec::Kind::kHttpGet);
  EXPECT_EQ(ready.port, 8080);  // the named port, resolved
  EXPECT_EQ(ready.path, "/ready");
  EXPECT_EQ(ready.host, "127.0.0.1");
  EXPECT_EQ(ready.timeout, absl::Seconds(3));
  ASSERT_EQ(ready.headers.size(), 1u);
  EXPECT_EQ(ready.headers[0].first, "X-Probe");
  EXPECT_EQ(table->at("/app-health/web/livez").kind, AppProbeSpec::Kind::kTcpSocket);
  EXPECT_EQ(table->at("/app-health/web/livez").port, 8081);
  EXPECT_EQ(table->at("/app-health/web/startupz").grpc_service, "shop.Cart");
  EXPECT_TRUE(table->at("/app-health/api/readyz").https);
}

TEST(AppProbeContractTest, AgentReadsEveryValueInTheInjectorsGoldenOutput) {
  absl::StatusOr<std::vector<Json>> documents = injection::ParseYamlDocuments(
      injection::testing::ReadTestFile(
          "controlplane/injection/testdata/workloads.injected.yaml"),
      "workloads.injected.yaml");
  ASSERT_TRUE(documents.ok()) << documents.status();
  int values = 0;
  size_t probes = 0;
  std::function<void(const Json&)> visit = [&](const Json& node) {
    if (node.is_object() && node.value("name", Json()) == "TANDEM_APP_PROBES" &&
        node.contains("value") && node["value"].is_string()) {
      ++values;
      absl::StatusOr<AppProbeTable> table =
          ParseAppProbes(node["value"].get<std::string>());
      EXPECT_TRUE(table.ok()) << table.status() << "\n" << node["value"];
      if (table.ok()) probes += table->size();
    }
    if (node.is_structured()) {
      for (const Json& child : node) visit(child);
    }
  };
  for (const Json& document : *documents) visit(document);
  EXPECT_GE(values, 1);
  EXPECT_GE(probes, 2u);  // the web Deployment's readiness and liveness probes
}

}  // namespace
}  // namespace tandem::agent
