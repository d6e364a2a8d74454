#include "controlplane/injection/kube_inject.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "controlplane/injection/admission_review.h"
#include "gtest/gtest.h"
#include "tests/support/injection_test_util.h"

namespace tandem::injection {
namespace {

using testing::ReadTestFile;
using testing::ShippedInjector;

constexpr char kInput[] = "controlplane/injection/testdata/workloads.yaml";
constexpr char kGolden[] = "controlplane/injection/testdata/workloads.injected.yaml";

struct CommandRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs tandemctl with `args` (shell words), stdin from `stdin_text`.
CommandRun Tandemctl(const std::string& args, const std::string& stdin_text = "") {
  const std::string dir = ::testing::TempDir();
  const std::string in = dir + "/tandemctl.in", out = dir + "/tandemctl.out",
                    err = dir + "/tandemctl.err";
  std::ofstream(in) << stdin_text;
  std::string command =
      std::string(TANDEMCTL_BIN) + " " + args + " <" + in + " >" + out + " 2>" + err;
  int status = std::system(command.c_str());
  CommandRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream o(out), e(err);
  run.out.assign(std::istreambuf_iterator<char>(o), std::istreambuf_iterator<char>());
  run.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return run;
}

std::string TemplateFlag() {
  return std::string("--template=") + TANDEM_SOURCE_DIR + "/" + testing::kTemplatePath;
}

TEST(KubeInjectTest, MatchesTheGoldenOutput) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  absl::StatusOr<std::string> out =
      KubeInject(ReadTestFile(kInput), "workloads.yaml", "default", *injector);
  ASSERT_TRUE(out.ok()) << out.status();
  // To refresh after a deliberate change: tandemctl kube-inject -f
  // testdata/workloads.yaml
  // --template=... > testdata/workloads.injected.yaml, and review the diff.
  EXPECT_EQ(*out, ReadTestFile(kGolden));
}

TEST(KubeInjectTest, TheBinaryPrintsTheGoldenOutput) {
  CommandRun from_file = Tandemctl("kube-inject -f " + std::string(TANDEM_SOURCE_DIR) +
                                   "/" + kInput + " " + TemplateFlag());
  EXPECT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, ReadTestFile(kGolden));
  CommandRun from_stdin =
      Tandemctl("kube-inject " + TemplateFlag() + " -f -", ReadTestFile(kInput));
  EXPECT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out, ReadTestFile(kGolden));
}

TEST(KubeInjectTest, InjectingTheOutputAgainChangesNothing) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  absl::StatusOr<std::string> again =
      KubeInject(ReadTestFile(kGolden), "injected.yaml", "default", *injector);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, ReadTestFile(kGolden));
}

// The two doors must agree: the webhook's patch applied to a pod gives exactly what
// kube-inject prints for that pod.
TEST(KubeInjectTest, KubeInjectAndTheWebhookReturnTheSamePodForTheSamePod) {
  constexpr char kPodYaml[] = R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  annotations:
    sidecar.tandem.dev/exclude-inbound-ports: "9090"
    sidecar.tandem.dev/sidecar-mode: classic
spec:
  serviceAccountName: web
  initContainers:
    - {name: setup, image: setup:1}
  containers:
    - name: web
      image: nginx
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /ready, port: http}}
      livenessProbe: {tcpSocket: {port: 8080}}
    - name: sidecar-app
      image: helper
      startupProbe: {grpc: {port: 9000}}
)";
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = testing::Yaml(kPodYaml);
  Json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request",
                  {{"uid", "u1"},
                   {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
                   {"namespace", "shop"},
                   {"object", pod}}}};
  AdmissionResult result = ReviewAdmission(review.dump(), *injector);
  ASSERT_EQ(result.http_status, 200) << result.body;
  std::string patch;
  ASSERT_TRUE(absl::Base64Unescape(
      Json::parse(result.body)["response"]["patch"].get<std::string>(), &patch));
  // Compared as unordered JSON: a patch says what goes where, not in which key order.
  nlohmann::json patched = nlohmann::json::parse(pod.patch(Json::parse(patch)).dump());
  auto unordered = [](const Json& j) { return nlohmann::json::parse(j.dump()); };

  absl::StatusOr<std::string> library =
      KubeInject(kPodYaml, "pod.yaml", "default", *injector);
  ASSERT_TRUE(library.ok()) << library.status();
  EXPECT_EQ(unordered(testing::Yaml(*library)), patched);

  CommandRun binary = Tandemctl("kube-inject -f - " + TemplateFlag(), kPodYaml);
  ASSERT_EQ(binary.exit_code, 0) << binary.err;
  EXPECT_EQ(unordered(testing::Yaml(binary.out)), patched);
}

TEST(KubeInjectTest, RefusesAnObjectNamingItAndTheProblem) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  constexpr char kBad[] = R"(apiVersion: v1
kind: ConfigMap
metadata: {name: ok}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata:
      annotations: {sidecar.tandem.dev/proxy-cpu: lots}
    spec:
      containers: [{name: web, image: nginx}]
)";
  const std::string message =
      "Deployment team-a/web: annotation sidecar.tandem.dev/proxy-cpu: \"lots\": is not "
      "a "
      "Kubernetes quantity (like 100m or 64Mi)";
  absl::StatusOr<std::string> out = KubeInject(kBad, "in.yaml", "team-a", *injector);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), message);

  CommandRun binary =
      Tandemctl("kube-inject -f - --namespace=team-a " + TemplateFlag(), kBad);
  EXPECT_EQ(binary.exit_code, 2);
  EXPECT_EQ(binary.out, "");
  EXPECT_EQ(binary.err, "tandemctl: " + message + "\n");
}

TEST(KubeInjectTest, RefusesAWorkloadWithoutAPodTemplate) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  absl::StatusOr<std::string> out =
      KubeInject("kind: Job\nmetadata: {name: j, namespace: x}\nspec: {}\n", "in.yaml",
                 "default", *injector);
  EXPECT_EQ(out.status().message(), "Job x/j: spec.template is missing or not a mapping");
}

TEST(KubeInjectTest, RefusesBadYamlNamingTheLine) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  absl::StatusOr<std::string> out =
      KubeInject("kind: Pod\nspec: [\n", "in.yaml", "default", *injector);
  EXPECT_EQ(out.status().message(), "in.yaml:3: end of sequence flow not found");
}

TEST(KubeInjectTest, TheBinaryPrintsItsUsage) {
  for (const char* args : {"--help", "kube-inject --help"}) {
    CommandRun run = Tandemctl(args);
    EXPECT_EQ(run.exit_code, 0) << args;
    EXPECT_EQ(run.out.rfind("usage: tandemctl kube-inject -f FILE|-", 0), 0u) << run.out;
  }
}

TEST(KubeInjectTest, TheBinaryRefusesBadUsage) {
  struct Case {
    std::string args;
    std::string last_line;
  };
  const Case kCases[] = {
      {"kube-inject " + TemplateFlag(),
       "tandemctl: kube-inject needs -f FILE (or -f - for stdin)"},
      {"kube-inject -f", "tandemctl: -f needs a file name (or - for stdin)"},
      {"kube-inject -f - --templat=x", "tandemctl: unknown flag --templat"},
      {"kube-inject -f - --template=/nonexistent/t.yaml",
       "tandemctl: --template: cannot read /nonexistent/t.yaml"},
      {"kube-inject -f /nonexistent/in.yaml " + TemplateFlag(),
       "tandemctl: cannot read /nonexistent/in.yaml"},
      {"uninject", "tandemctl: unknown command uninject"},
      {"", "  (deploy/kubernetes/injection/sidecar-template.yaml in the repository)"},
  };
  for (const Case& c : kCases) {
    CommandRun run = Tandemctl(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args;
    std::string err = run.err;
    if (!err.empty() && err.back() == '\n') err.pop_back();
    EXPECT_EQ(err.substr(err.rfind('\n') + 1), c.last_line) << c.args;
  }
}

}  // namespace
}  // namespace tandem::injection
