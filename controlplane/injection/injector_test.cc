#include "controlplane/injection/injector.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/injection_test_util.h"

namespace tandem::injection {
namespace {

using testing::ContainerNamed;
using testing::EnvValue;
using testing::ShippedInjector;
using testing::Yaml;

constexpr char kPod[] = R"(
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: {team: a}
spec:
  serviceAccountName: web-sa
  initContainers:
    - {name: migrate, image: app}
  containers:
    - name: web
      image: app
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /ready, port: http}}
  volumes:
    - {name: data, emptyDir: {}}
)";

std::vector<std::string> Names(const Json& pod, const std::string& list) {
  std::vector<std::string> names;
  for (const Json& c : pod["spec"][list]) names.push_back(c.value("name", ""));
  return names;
}

Json WithAnnotations(const Json& annotations) {
  Json pod = Yaml(kPod);
  for (const auto& [k, v] : annotations.items()) pod["metadata"]["annotations"][k] = v;
  return pod;
}

TEST(InjectorTest, InjectsNativeSidecarsBeforeTheAppsInitContainers) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml(kPod);
  absl::StatusOr<InjectionOutcome> outcome = injector->InjectPod(pod, "default");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->injected);
  EXPECT_EQ(Names(pod, "initContainers"),
            (std::vector<std::string>{"tandem-init", "tandem-agent", "tandem-proxy",
                                      "migrate"}));
  EXPECT_EQ(Names(pod, "containers"), std::vector<std::string>{"web"});
  EXPECT_EQ(Names(pod, "volumes"),
            (std::vector<std::string>{"data", "tandem-sds", "tandem-token",
                                      "tandem-ca-root", "tandem-proxy-config"}));
  for (const char* sidecar : {"tandem-agent", "tandem-proxy"}) {
    EXPECT_EQ((*ContainerNamed(pod, "initContainers", sidecar))["restartPolicy"],
              "Always");
  }
  EXPECT_FALSE(
      ContainerNamed(pod, "initContainers", "tandem-init")->contains("restartPolicy"));
  const Json& annotations = pod["metadata"]["annotations"];
  EXPECT_EQ(annotations["team"], "a");
  EXPECT_EQ(annotations["prometheus.io/port"], "15090");
  EXPECT_EQ(
      annotations["sidecar.tandem.dev/status"],
      R"({"mode":"native","initContainers":["tandem-init"],)"
      R"("sidecars":["tandem-agent","tandem-proxy"],)"
      R"("volumes":["tandem-sds","tandem-token","tandem-ca-root","tandem-proxy-config"]})");
  // Identity: the pod's service account, token for the CA's audience.
  const Json& agent = *ContainerNamed(pod, "initContainers", "tandem-agent");
  EXPECT_NE(
      std::find(agent["args"].begin(), agent["args"].end(), "--service-account=web-sa"),
      agent["args"].end());
  EXPECT_EQ(pod["spec"]["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"]
               ["audience"],
            "istio-ca");
  EXPECT_EQ(agent["image"], "tandem/proxy:dev");
}

TEST(InjectorTest, ClassicModePutsTheProxyFirstAndHoldsTheApp) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = WithAnnotations({{"sidecar.tandem.dev/sidecar-mode", "classic"}});
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  EXPECT_EQ(Names(pod, "initContainers"),
            (std::vector<std::string>{"tandem-init", "migrate"}));
  EXPECT_EQ(Names(pod, "containers"),
            (std::vector<std::string>{"tandem-agent", "tandem-proxy", "web"}));
  const Json& proxy = *ContainerNamed(pod, "containers", "tandem-proxy");
  EXPECT_FALSE(proxy.contains("restartPolicy"));
  EXPECT_EQ(
      proxy["lifecycle"]["postStart"]["exec"]["command"],
      Json::parse(R"(["/usr/local/bin/tandem-proxy", "--wait-ready=127.0.0.1:15021"])"));
  EXPECT_FALSE(ContainerNamed(pod, "containers", "tandem-agent")->contains("lifecycle"));
  EXPECT_NE(
      pod["metadata"]["annotations"]["sidecar.tandem.dev/status"].get<std::string>().find(
          R"("mode":"classic")"),
      std::string::npos);
}

TEST(InjectorTest, DefaultServiceAccountWhenThePodNamesNone) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml("spec: {containers: [{name: a, image: b}]}");
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  const Json& args = (*ContainerNamed(pod, "initContainers", "tandem-agent"))["args"];
  EXPECT_NE(std::find(args.begin(), args.end(), "--service-account=default"), args.end());
}

TEST(InjectorTest, AnnotationsFlowIntoTheInitContainerAndTheProxy) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = WithAnnotations({
      {"sidecar.tandem.dev/exclude-inbound-ports", "9090"},
      {"sidecar.tandem.dev/include-inbound-ports", "8080"},
      {"sidecar.tandem.dev/exclude-outbound-ports", "5432,6379"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs", "10.96.0.0/12"},
      {"sidecar.tandem.dev/inbound-mode", "PERMISSIVE"},
      {"sidecar.tandem.dev/proxy-cpu", "50m"},
      {"sidecar.tandem.dev/proxy-memory", "32Mi"},
      {"sidecar.tandem.dev/proxy-cpu-limit", "500m"},
      {"sidecar.tandem.dev/proxy-memory-limit", "128Mi"},
  });
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  const Json& init = *ContainerNamed(pod, "initContainers", "tandem-init");
  EXPECT_EQ(EnvValue(init, "TANDEM_EXCLUDE_INBOUND_PORTS"),
            "15000,15001,15006,15019,15020,15021,15090,9090");
  EXPECT_EQ(EnvValue(init, "TANDEM_INCLUDE_INBOUND_PORTS"), "8080");
  EXPECT_EQ(EnvValue(init, "TANDEM_EXCLUDE_OUTBOUND_PORTS"), "5432,6379");
  EXPECT_EQ(EnvValue(init, "TANDEM_EXCLUDE_OUTBOUND_CIDRS"), "10.96.0.0/12");
  const Json& proxy = *ContainerNamed(pod, "initContainers", "tandem-proxy");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_INBOUND_MODE"), "PERMISSIVE");
  EXPECT_EQ(proxy["resources"],
            Json::parse(R"({"requests": {"cpu": "50m", "memory": "32Mi"},
                                               "limits": {"cpu": "500m", "memory": "128Mi"}})"));
}

TEST(InjectorTest, DefaultsGiveTheScriptsDefaultsAndTheConfigsMode) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml(kPod);
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  const Json& init = *ContainerNamed(pod, "initContainers", "tandem-init");
  EXPECT_EQ(EnvValue(init, "TANDEM_EXCLUDE_INBOUND_PORTS"),
            "15000,15001,15006,15019,15020,15021,15090");
  EXPECT_EQ(EnvValue(init, "TANDEM_INCLUDE_INBOUND_PORTS"), "*");
  const Json& proxy = *ContainerNamed(pod, "initContainers", "tandem-proxy");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_INBOUND_MODE"), "");
  EXPECT_EQ(proxy["resources"],
            Json::parse(R"({"requests": {"cpu": "10m", "memory": "16Mi"},
                                               "limits": {"memory": "256Mi"}})"));
}

TEST(InjectorTest, RewritesAppProbesForTheAgent) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml(kPod);
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  EXPECT_EQ(
      pod["spec"]["containers"][0]["readinessProbe"],
      Json::parse(R"({"httpGet": {"path": "/app-health/web/readyz", "port": 15020}})"));
  const Json& agent = *ContainerNamed(pod, "initContainers", "tandem-agent");
  EXPECT_EQ(Json::parse(EnvValue(agent, "TANDEM_APP_PROBES")), Json::parse(R"({
      "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP",
          "host": "", "httpHeaders": []}, "timeoutSeconds": 1}})"));
  const Json& args = agent["args"];
  for (const char* flag : {"--app-health=0.0.0.0:15020", "--metrics=0.0.0.0:15019"}) {
    EXPECT_NE(std::find(args.begin(), args.end(), flag), args.end()) << flag;
  }
}

TEST(InjectorTest, ProbeRewriteCanBeTurnedOff) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = WithAnnotations({{"sidecar.tandem.dev/rewrite-app-probes", "false"}});
  Json before = pod["spec"]["containers"];
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  EXPECT_EQ(pod["spec"]["containers"], before);
  EXPECT_EQ(EnvValue(*ContainerNamed(pod, "initContainers", "tandem-agent"),
                     "TANDEM_APP_PROBES"),
            "{}");
}

TEST(InjectorTest, InjectingTwiceChangesNothingTheSecondTime) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  for (const char* mode : {"native", "classic"}) {
    Json pod = WithAnnotations({{"sidecar.tandem.dev/sidecar-mode", mode}});
    ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
    Json once = pod;
    absl::StatusOr<InjectionOutcome> again = injector->InjectPod(pod, "default");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->injected);
    EXPECT_EQ(again->skip_reason, "already injected");
    EXPECT_EQ(pod, once) << mode;
  }
}

TEST(InjectorTest, SkipsAPodThatAlreadyRunsTandemProxy) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml("spec: {containers: [{name: app}, {name: tandem-proxy}]}");
  Json before = pod;
  EXPECT_EQ(injector->InjectPod(pod, "default")->skip_reason, "already injected");
  EXPECT_EQ(pod, before);
}

TEST(InjectorTest, PointsPrometheusAtTheMergedPageAndRecordsTheAppsScrape) {
  struct Case {
    const char* what;
    Json annotations;
    // What the pod ends with, and what the proxy is told of the app's own page.
    std::string scrape, port, path, app_port, app_path;
  };
  std::vector<Case> cases = {
      {"no prometheus.io/*: the proxy's merged page", Json::object(), "true", "15090",
       "/stats/prometheus", "", ""},
      {"the app's port and path are recorded, then replaced",
       {{"prometheus.io/scrape", "true"},
        {"prometheus.io/port", "9102"},
        {"prometheus.io/path", "/stats"}},
       "true",
       "15090",
       "/stats/prometheus",
       "9102",
       "/stats"},
      {"a port alone: path /metrics",
       {{"prometheus.io/port", "8080"}},
       "true",
       "15090",
       "/stats/prometheus",
       "8080",
       "/metrics"},
      {"scrape false: the pod's annotations stay, nothing merged",
       {{"prometheus.io/scrape", "false"}, {"prometheus.io/port", "9102"}},
       "false",
       "9102",
       "/stats/prometheus",
       "",
       ""},
  };
  std::unique_ptr<Injector> injector = ShippedInjector();
  for (const Case& c : cases) {
    Json pod = WithAnnotations(c.annotations);
    ASSERT_TRUE(injector->InjectPod(pod, "default")->injected) << c.what;
    const Json& annotations = pod["metadata"]["annotations"];
    EXPECT_EQ(annotations["prometheus.io/scrape"], c.scrape) << c.what;
    EXPECT_EQ(annotations["prometheus.io/port"], c.port) << c.what;
    EXPECT_EQ(annotations["prometheus.io/path"], c.path) << c.what;
    const Json& proxy = *ContainerNamed(pod, "initContainers", "tandem-proxy");
    EXPECT_EQ(EnvValue(proxy, "TANDEM_APP_METRICS_PORT"), c.app_port) << c.what;
    EXPECT_EQ(EnvValue(proxy, "TANDEM_APP_METRICS_PATH"), c.app_path) << c.what;
  }
}

TEST(InjectorTest, HandsTheProxyItsWorkloadLabels) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Yaml(R"(
metadata:
  generateName: web-6f7c9d-
  labels: {app: web, version: v3, pod-template-hash: 6f7c9d}
  ownerReferences: [{kind: ReplicaSet, name: web-6f7c9d, controller: true}]
spec:
  containers: [{name: web, image: app}]
)");
  ASSERT_TRUE(injector->InjectPod(pod, "default")->injected);
  const Json& proxy = *ContainerNamed(pod, "initContainers", "tandem-proxy");
  EXPECT_EQ(EnvValue(proxy, "ISTIO_META_WORKLOAD_NAME"), "web");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_APP"), "web");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_VERSION"), "v3");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_CANONICAL_SERVICE"), "web");
  EXPECT_EQ(EnvValue(proxy, "TANDEM_CANONICAL_REVISION"), "v3");
}

TEST(InjectorTest, SkipRulesLeaveThePodUntouched) {
  struct Case {
    Json pod;
    std::string ns;
    std::string reason;
  };
  std::vector<Case> cases = {
      {Yaml("spec: {hostNetwork: true, containers: [{name: a}]}"), "default",
       "uses the host's network (hostNetwork: true)"},
      {Yaml(kPod), "tandem-system", "in the control plane's namespace tandem-system"},
      {WithAnnotations({{"sidecar.tandem.dev/inject", "false"}}), "default",
       "sidecar.tandem.dev/inject is \"false\""},
  };
  std::unique_ptr<Injector> injector = ShippedInjector();
  for (Case& c : cases) {
    Json before = c.pod;
    absl::StatusOr<InjectionOutcome> outcome = injector->InjectPod(c.pod, c.ns);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_FALSE(outcome->injected);
    EXPECT_EQ(outcome->skip_reason, c.reason);
    EXPECT_EQ(c.pod, before);
  }
}

TEST(InjectorTest, ControlPlaneNamespaceIsConfigurable) {
  InjectorOptions options;
  options.template_yaml = testing::ReadTestFile(testing::kTemplatePath);
  options.control_plane_namespace = "mesh";
  options.proxy_image = "registry.local/tandem-proxy:1";
  std::unique_ptr<Injector> injector = *Injector::Create(options);
  Json pod = Yaml(kPod);
  EXPECT_EQ(injector->InjectPod(pod, "mesh")->skip_reason,
            "in the control plane's namespace mesh");
  ASSERT_TRUE(injector->InjectPod(pod, "tandem-system")->injected);
  EXPECT_EQ((*ContainerNamed(pod, "initContainers", "tandem-proxy"))["image"],
            "registry.local/tandem-proxy:1");
}

TEST(InjectorTest, RefusesBadPods) {
  struct Case {
    Json pod;
    std::string message;
  };
  std::vector<Case> cases = {
      {WithAnnotations({{"sidecar.tandem.dev/inbound-mode", "strict"}}),
       R"(annotation sidecar.tandem.dev/inbound-mode: "strict": must be STRICT or PERMISSIVE)"},
      {Yaml(
           "spec: {containers: [{name: web, livenessProbe: {tcpSocket: {port: http}}}]}"),
       R"(container "web": livenessProbe: port "http" is not a port name of the container)"},
      {Yaml("metadata: {name: a}"), "spec is missing or not a mapping"},
      {Yaml("{metadata: [], spec: {}}"), "metadata is not a mapping"},
      {Yaml("spec: {containers: []}"), "spec.containers is missing or empty"},
      {Yaml("spec: {containers: [{name: a}], volumes: {}}"),
       "spec.volumes is not a list"},
      {Yaml("spec: {containers: [{name: a}, {name: tandem-agent}]}"),
       "the pod already has a container named tandem-agent"},
      {Json::array(), "the pod is not a mapping"},
      {WithAnnotations({{"prometheus.io/port", "http"}}),
       R"(annotation prometheus.io/port: "http": must be a port number, 1-65535)"},
      {WithAnnotations({{"prometheus.io/port", "70000"}}),
       R"(annotation prometheus.io/port: "70000": must be a port number, 1-65535)"},
      {WithAnnotations({{"prometheus.io/port", "9102"}, {"prometheus.io/path", "/a b"}}),
       R"(annotation prometheus.io/path: "/a b": must start with / and hold no space or control character)"},
      {WithAnnotations(
           {{"prometheus.io/port", "9102"}, {"prometheus.io/path", "metrics"}}),
       R"(annotation prometheus.io/path: "metrics": must start with / and hold no space or control character)"},
  };
  std::unique_ptr<Injector> injector = ShippedInjector();
  for (Case& c : cases) {
    absl::StatusOr<InjectionOutcome> outcome = injector->InjectPod(c.pod, "default");
    EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(outcome.status().message(), c.message);
  }
}

TEST(InjectorTest, RefusesBadTemplates) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  const Case kCases[] = {
      {"sidecars: [{name: tandem-proxy}]\nextra: 1\n",
       "t.yaml: unknown key extra (allowed: podAnnotations, initContainers, sidecars, "
       "classicProxyLifecycle, volumes)"},
      {"sidecars: [{name: tandem-agent}]\n",
       "t.yaml: sidecars must include tandem-proxy"},
      {"sidecars: [{name: tandem-proxy, image: \"{{image}}\"}]\n",
       "t.yaml: unknown placeholder {{image}}"},
      {"sidecars: [{name: tandem-proxy, image: \"x{{proxy_image\"}]\n",
       "t.yaml: unclosed placeholder in \"x{{proxy_image\""},
      {"sidecars: [{name: tandem-proxy, args: [\"--r={{proxy_resources}}\"]}]\n",
       "t.yaml: placeholder {{proxy_resources}} is not a string; it must be a whole "
       "value"},
      {"sidecars: {}\n", "t.yaml: sidecars must be a list"},
      {"podAnnotations: {a: 1}\nsidecars: [{name: tandem-proxy}]\n",
       "t.yaml: podAnnotations.a must be a string"},
      {"[]\n", "t.yaml: must be one YAML document holding a mapping"},
      {"a: [\n", "t.yaml:2: end of sequence flow not found"},
  };
  for (const Case& c : kCases) {
    InjectorOptions options;
    options.template_yaml = c.yaml;
    options.template_name = "t.yaml";
    absl::StatusOr<std::unique_ptr<Injector>> injector = Injector::Create(options);
    EXPECT_EQ(injector.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_EQ(injector.status().message(), c.message);
  }
}

}  // namespace
}  // namespace tandem::injection
