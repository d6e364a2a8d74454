// tandem-ca as a process with --injector-listen: it serves /inject over HTTPS with a
// certificate from its own CA and puts its root bundle into the webhook configuration
// through a (fake) Kubernetes API server, using the --kube-* flags.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"
#include "tests/support/fake_https_server.h"

namespace tandem::controlplane {
namespace {

constexpr char kConfig[] = R"({"apiVersion":"admissionregistration.k8s.io/v1",
  "kind":"MutatingWebhookConfiguration","metadata":{"name":"tandem-sidecar-injector",
  "resourceVersion":"5"},"webhooks":[{"name":"sidecar-injector.tandem.dev",
  "clientConfig":{"service":{"name":"tandem-injector","namespace":"tandem-system",
  "path":"/inject","port":443}}}]})";

// Runs `command` through the shell; returns its exit status and output.
std::pair<int, std::string> RunShell(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  return {pclose(pipe), out};
}

class InjectorMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mkdir((dir_ + "/root").c_str(), 0700);
    server_ = *FakeHttpsServer::Create([this](const FakeHttpsRequest& request) {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (request.method == "PUT") object_ = request.body;
      return FakeHttpsReply{200, object_};
    });
    std::ofstream(dir_ + "/kube-ca.pem") << server_->ca_pem();
    std::ofstream(dir_ + "/token") << "ca-token\n";
  }
  std::vector<std::string> Flags() {
    return {TANDEM_CA_BIN,
            "serve",
            "--root-dir=" + dir_ + "/root",
            "--listen=127.0.0.1:0",
            "--metrics=",
            "--injector-listen=127.0.0.1:0",
            "--template=" TANDEM_SOURCE_DIR
            "/deploy/kubernetes/injection/sidecar-template.yaml",
            absl::StrCat("--kube-api-server=127.0.0.1:", server_->port()),
            "--kube-ca-file=" + dir_ + "/kube-ca.pem",
            "--kube-token-file=" + dir_ + "/token"};
  }
  std::vector<FakeHttpsRequest> Requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  tandem::testing::TempDir temp_{"tandem-injector-main-test"};
  std::string dir_ = temp_.path();
  absl::Mutex mu_;
  std::string object_ ABSL_GUARDED_BY(mu_) = kConfig;
  std::vector<FakeHttpsRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<FakeHttpsServer> server_;
};

TEST_F(InjectorMainTest, ServesInjectAndPublishesItsRootAsTheCaBundle) {
  tandem::testing::Subprocess ca("tandem-ca", Flags(), dir_ + "/ca.log");
  ASSERT_TRUE(ca.Start());
  // The injector binds port 0 and logs the port; the PUT comes once it serves.
  const std::string kServing = "listening listener=injector address=127.0.0.1:";
  ASSERT_TRUE(tandem::testing::WaitFor(
      [&] {
        absl::MutexLock lock(&mu_);
        return absl::StrContains(ca.Log(), kServing) && requests_.size() >= 2;
      },
      absl::Seconds(20)))
      << ca.Log();
  const std::string log = ca.Log();
  const size_t port_at = log.find(kServing) + kServing.size();
  int injector_port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::string_view(log).substr(port_at, log.find('\n', port_at) - port_at),
      &injector_port))
      << log;
  // The root tandem-ca made on first start is its whole bundle (no --extra-roots).
  absl::StatusOr<std::string> bundle = ReadFileToString(dir_ + "/root/ca-cert.pem");
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::vector<FakeHttpsRequest> requests = Requests();
  ASSERT_GE(requests.size(), 2u) << ca.Log();
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].path,
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
            "tandem-sidecar-injector");
  EXPECT_EQ(requests[1].authorization, "Bearer ca-token");
  EXPECT_TRUE(absl::StrContains(
      requests[1].body,
      absl::StrCat("\"caBundle\":\"", absl::Base64Escape(*bundle), "\"")))
      << requests[1].body;

  // The API server's view: the bundle it was given verifies the webhook's name.
  std::ofstream(dir_ + "/bundle.pem") << *bundle;
  auto [status, out] = RunShell(absl::StrCat(
      "curl -sS --max-time 10 --cacert ", dir_, "/bundle.pem --resolve ",
      "tandem-injector.tandem-system.svc:", injector_port,
      ":127.0.0.1 -o /dev/null -w '%{http_code}' -X POST ",
      "-H 'Content-Type: application/json' -d '{}' ",
      "https://tandem-injector.tandem-system.svc:", injector_port, "/inject"));
  EXPECT_EQ(status, 0) << out << ca.Log();
  EXPECT_EQ(out, "400") << ca.Log();  // TLS held; the injector refuses a non-review
}

TEST_F(InjectorMainTest, RefusesInjectorFlagsItCannotHonour) {
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  int run = 0;
  for (const Case& c : std::vector<Case>{
           {{"--injector-listen=", "--webhook-config=x"},
            "need --injector-listen"},
           {{"--injector-dns-names=injector.example.com"},
            "--injector-dns-names: the first name must be <service>.<namespace>.svc"},
           {{"--injector-dns-names=bad name.ns.svc", "--webhook-config="},
            "--injector-listen: injector certificate: bad DNS name \"bad name.ns.svc\""},
       }) {
    std::vector<std::string> argv = Flags();
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    tandem::testing::Subprocess ca("tandem-ca", argv,
                                   absl::StrCat(dir_, "/ca-refused-", ++run, ".log"));
    ASSERT_TRUE(ca.Start());
    int status = ca.Signal(0, absl::Seconds(20));  // waits for the exit
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << ca.Log();
    EXPECT_EQ(WEXITSTATUS(status), 2) << ca.Log();
    EXPECT_TRUE(absl::StrContains(ca.Log(), c.says)) << ca.Log();
  }
}

// The root rotation flags (docs/controlplane.md) are checked before anything starts.
TEST_F(InjectorMainTest, RefusesRootRotationFlagsItCannotHonour) {
  int run = 0;
  for (auto [flag, says] : std::vector<std::pair<std::string, std::string>>{
           {"--root-reload-interval=soon",
            "--root-reload-interval: not a positive duration (e.g. 5s), or 0"},
           {"--extra-roots=" + dir_ + "/missing.pem",
            "--extra-roots: cannot read " + dir_ + "/missing.pem"},
       }) {
    std::vector<std::string> argv = Flags();
    argv.push_back(flag);
    tandem::testing::Subprocess ca("tandem-ca", argv,
                                   absl::StrCat(dir_, "/ca-rotation-", ++run, ".log"));
    ASSERT_TRUE(ca.Start());
    int status = ca.Signal(0, absl::Seconds(20));  // waits for the exit
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << ca.Log();
    EXPECT_EQ(WEXITSTATUS(status), 2) << ca.Log();
    EXPECT_TRUE(absl::StrContains(ca.Log(), says)) << ca.Log();
  }
}

}  // namespace
}  // namespace tandem::controlplane
