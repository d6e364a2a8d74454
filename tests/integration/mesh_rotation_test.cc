// The mesh with its three real processes on loopback: tandem-ca, two tandem-agents and
// two tandem-proxies, certificates living 3 seconds and rotating under load.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/jwt.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {
namespace {

struct Pod {
  std::string name;
  int outbound = 0, inbound = 0, metrics = 0, admin = 0, agent_metrics = 0;
  std::unique_ptr<Subprocess> agent, proxy;
};

class MeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-mesh-XXXXXX";
    dir_ = mkdtemp(tmpl);
    signing_key_ =
        NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
    Write(dir_ + "/token-key.pub", *controlplane::PublicKeyPemOf(signing_key_));
    ca_port_ = PickUnusedPort();
    ca_metrics_ = PickUnusedPort();
  }
  void TearDown() override {
    for (Pod* pod : {&client_, &server_}) {
      if (HasFailure() && pod->proxy) std::cerr << pod->proxy->Log().substr(0, 4000);
      if (HasFailure() && pod->agent) std::cerr << pod->agent->Log().substr(0, 4000);
      pod->proxy.reset();
      pod->agent.reset();
    }
    if (HasFailure() && ca_) std::cerr << ca_->Log().substr(0, 4000);
    ca_.reset();
    echo_.Stop();
    std::filesystem::remove_all(dir_);
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  void StartCa() {
    ca_ = std::make_unique<Subprocess>(
        "tandem-ca",
        std::vector<std::string>{TANDEM_CA_BIN, "serve", "--root-dir=" + dir_ + "/ca",
                                 absl::StrCat("--listen=127.0.0.1:", ca_port_),
                                 absl::StrCat("--metrics=127.0.0.1:", ca_metrics_),
                                 "--token-public-key=" + dir_ + "/token-key.pub",
                                 "--default-ttl=3s", "--max-ttl=1h"},
        dir_ + "/ca.log");
    ASSERT_TRUE(ca_->Start());
    ASSERT_TRUE(WaitFor([&] { return !HttpGet(ca_metrics_, "/healthz/ready").empty(); },
                        absl::Seconds(20)))
        << ca_->Log();
    Write(dir_ + "/ca-root.pem", HttpGet(ca_metrics_, "/trust-bundle"));
  }
  void StartPod(Pod& pod, const std::string& ns, const std::string& sa,
                const std::string& routing) {
    pod.outbound = PickUnusedPort();
    pod.inbound = PickUnusedPort();
    pod.metrics = PickUnusedPort();
    pod.admin = PickUnusedPort();
    pod.agent_metrics = PickUnusedPort();
    std::string pod_dir = dir_ + "/" + pod.name;
    std::filesystem::create_directories(pod_dir);
    Write(pod_dir + "/token",
          *controlplane::MintServiceAccountToken(signing_key_, {ns, sa}, "istio-ca",
                                                 "tandem", absl::Now(), absl::Hours(1)));
    pod.agent = std::make_unique<Subprocess>(
        "tandem-agent",
        std::vector<std::string>{
            TANDEM_AGENT_BIN, absl::StrCat("--ca-address=127.0.0.1:", ca_port_),
            "--ca-root=" + dir_ + "/ca-root.pem", "--token-file=" + pod_dir + "/token",
            "--namespace=" + ns, "--service-account=" + sa,
            "--sds-socket=" + pod_dir + "/sds/sds.sock",
            absl::StrCat("--proxy-uid=", getuid()), "--validity=3s",
            absl::StrCat("--metrics=127.0.0.1:", pod.agent_metrics)},
        pod_dir + "/agent.log");
    ASSERT_TRUE(pod.agent->Start());
    Write(pod_dir + "/proxy.json",
          absl::StrCat("{\"outbound_address\": \"127.0.0.1:", pod.outbound,
                       "\", \"inbound_address\": \"127.0.0.1:", pod.inbound,
                       "\", \"metrics_address\": \"127.0.0.1:", pod.metrics,
                       "\", \"health_address\": \"127.0.0.1:", PickUnusedPort(),
                       "\", \"admin_address\": \"127.0.0.1:", pod.admin,
                       "\", \"workers\": 2, \"socket_mark\": 0, \"sds_socket\": \"",
                       pod_dir, "/sds/sds.sock\"", routing, "}"));
    pod.proxy = std::make_unique<Subprocess>(
        "tandem-proxy",
        std::vector<std::string>{TANDEM_PROXY_BIN, "--config=" + pod_dir + "/proxy.json"},
        pod_dir + "/proxy.log");
    ASSERT_TRUE(pod.proxy->Start());
  }
  bool Ready(const Pod& pod) { return !HttpGet(pod.metrics, "/healthz/ready").empty(); }
  double Metric(const Pod& pod, const std::string& sample) {
    return MetricValue(HttpGet(pod.metrics, "/metrics"), sample);
  }
  void StartMesh() {
    StartCa();
    client_.name = "client";
    server_.name = "server";
    StartPod(server_, "shop", "server",
             absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""));
    StartPod(client_, "shop", "client",
             absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                          server_.inbound, "\""));
    ASSERT_TRUE(
        WaitFor([&] { return Ready(client_) && Ready(server_); }, absl::Seconds(20)));
  }

  std::string dir_, signing_key_;
  int ca_port_ = 0, ca_metrics_ = 0;
  std::unique_ptr<Subprocess> ca_;
  EchoServer echo_;
  Pod client_, server_;
};

TEST_F(MeshTest, RotatesCertificatesUnderLoadWithoutDroppingAConnection) {
  StartMesh();
  double before =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  TrafficReport report = RunEchoTraffic(client_.outbound, absl::Seconds(30),
                                        /*short_workers=*/4, /*long_connections=*/3);
  double rotations =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}") - before;
  double server_rotations =
      Metric(server_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  std::cerr << "short connections ok: " << report.short_ok
            << ", long-lived rounds ok: " << report.long_rounds_ok
            << ", bytes verified: " << report.bytes_verified
            << ", client rotations during load: " << rotations
            << ", server rotations: " << server_rotations << "\n";
  EXPECT_EQ(report.short_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_EQ(report.long_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_GT(report.short_ok, 100);
  EXPECT_GT(report.long_rounds_ok, 3 * 100) << "long-lived connections carried traffic";
  EXPECT_GE(rotations, 8) << "3 s certificates must have rotated repeatedly in 30 s";
  EXPECT_EQ(Metric(client_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
}

TEST_F(MeshTest, ProxyKeepsServingWhenTheAgentDiesAndIsReFedWhenItReturns) {
  StartMesh();
  client_.agent->Kill();
  TrafficReport during = RunEchoTraffic(client_.outbound, absl::Seconds(1), 2, 1);
  EXPECT_EQ(during.short_failed, 0);
  double before =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  ASSERT_TRUE(client_.agent->Start());
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}") >
               before;
      },
      absl::Seconds(20)));
}

TEST_F(MeshTest, CaIdentityComesFromTheTokenNotTheRequest) {
  StartMesh();
  std::string certs = HttpGet(client_.admin, "/certs");
  EXPECT_NE(certs.find("spiffe://cluster.local/ns/shop/sa/client"), std::string::npos)
      << certs;
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// Every process's /metrics must be valid Prometheus text by Prometheus's own linter.
TEST_F(MeshTest, MetricsEndpointsPassPromtool) {
  if (system("command -v promtool >/dev/null") != 0) GTEST_SKIP() << "promtool missing";
  StartMesh();
  ASSERT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(300), 1, 1).short_failed,
            0);
  for (auto [name, port] :
       {std::pair{"proxy", client_.metrics}, std::pair{"agent", client_.agent_metrics},
        std::pair{"ca", ca_metrics_}}) {
    std::string text = HttpGet(port, "/metrics");
    ASSERT_FALSE(text.empty()) << name;
    std::string path = dir_ + "/" + name + ".prom";
    std::ofstream(path) << text;
    std::string cmd = "promtool check metrics < " + path + " > " + path + ".lint 2>&1";
    int rc = system(cmd.c_str());
    std::ifstream lint(path + ".lint");
    std::string findings((std::istreambuf_iterator<char>(lint)), {});
    EXPECT_EQ(rc, 0) << name << ":\n" << findings;
  }
}

}  // namespace
}  // namespace tandem::testing
