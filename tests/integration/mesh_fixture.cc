#include "tests/integration/mesh_fixture.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/auth/jwt.h"

namespace tandem::testing {

void MeshTest::SetUp() {
  char tmpl[] = "/tmp/tandem-mesh-XXXXXX";
  dir_ = mkdtemp(tmpl);
  signing_key_ =
      NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
  Write(dir_ + "/token-key.pub", *controlplane::PublicKeyPemOf(signing_key_));
}

void MeshTest::TearDown() {
  // Each Subprocess prints its log as it goes if the test failed.
  for (Pod* pod : {&client_, &server_}) {
    pod->proxy.reset();
    pod->agent.reset();
  }
  ca_.reset();
  ca_service_.Stop();
  echo_.Stop();
  std::filesystem::remove_all(dir_);
}

void MeshTest::Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

void MeshTest::StartCa(const std::string& root_dir, const std::string& extra_roots,
                       bool keep_ca_root) {
  std::vector<std::string> args = {
      TANDEM_CA_BIN,
      "serve",
      "--root-dir=" + dir_ + "/" + root_dir,
      "--listen=127.0.0.1:0",
      "--metrics=127.0.0.1:0",
      "--token-public-key=" + dir_ + "/token-key.pub",
      absl::StrCat("--default-ttl=", absl::ToInt64Seconds(cert_validity_), "s"),
      "--max-ttl=1h"};
  if (!extra_roots.empty()) args.push_back("--extra-roots=" + extra_roots);
  args.insert(args.end(), extra_ca_args_.begin(), extra_ca_args_.end());
  ca_ = std::make_unique<Subprocess>("tandem-ca", args, dir_ + "/" + root_dir + ".log");
  ASSERT_TRUE(ca_->Start());
  int grpc = WaitForListeningPort(*ca_, "grpc");
  ca_metrics_ = WaitForListeningPort(*ca_, "metrics");
  ASSERT_TRUE(grpc > 0 && ca_metrics_ > 0) << "tandem-ca did not come up";
  ca_service_.set_target_port(grpc);
  ASSERT_TRUE(WaitFor([&] { return !HttpGet(ca_metrics_, "/healthz/ready").empty(); },
                      absl::Seconds(20)))
      << ca_->Log();
  if (!keep_ca_root) Write(dir_ + "/ca-root.pem", HttpGet(ca_metrics_, "/trust-bundle"));
}

void MeshTest::StartPod(Pod& pod, const std::string& ns, const std::string& sa,
                        const std::string& config) {
  std::string pod_dir = dir_ + "/" + pod.name;
  std::filesystem::create_directories(pod_dir);
  Write(pod_dir + "/token",
        *controlplane::MintServiceAccountToken(signing_key_, {ns, sa}, "istio-ca",
                                               "tandem", absl::Now(), absl::Hours(1)));
  pod.agent = std::make_unique<Subprocess>(
      "tandem-agent",
      std::vector<std::string>{
          TANDEM_AGENT_BIN, absl::StrCat("--ca-address=127.0.0.1:", ca_service_.port()),
          "--ca-root=" + dir_ + "/ca-root.pem", "--token-file=" + pod_dir + "/token",
          "--namespace=" + ns, "--service-account=" + sa,
          "--sds-socket=" + pod_dir + "/sds/sds.sock",
          absl::StrCat("--proxy-uid=", getuid()),
          absl::StrCat("--validity=", absl::ToInt64Seconds(cert_validity_), "s"),
          "--metrics=127.0.0.1:0", extra_agent_flag_},
      pod_dir + "/agent.log");
  ASSERT_TRUE(pod.agent->Start());
  pod.agent_metrics = WaitForListeningPort(*pod.agent, "metrics");
  ASSERT_GT(pod.agent_metrics, 0) << "tandem-agent did not come up";
  Write(pod_dir + "/proxy.json",
        absl::StrCat("{\"outbound_address\": \"127.0.0.1:0\", "
                     "\"inbound_address\": \"127.0.0.1:0\", "
                     "\"metrics_address\": \"127.0.0.1:0\", "
                     "\"health_address\": \"127.0.0.1:0\", "
                     "\"admin_address\": \"127.0.0.1:0\", "
                     "\"workers\": 2, \"socket_mark\": 0, \"sds_socket\": \"",
                     pod.proxy_sds_socket.empty() ? pod_dir + "/sds/sds.sock"
                                                  : pod.proxy_sds_socket,
                     "\"", config, extra_proxy_json_, "}"));
  StartProxy(pod);
}

void MeshTest::StartProxy(Pod& pod, const std::vector<std::string>& wrapper) {
  std::string pod_dir = dir_ + "/" + pod.name;
  std::vector<std::string> argv = wrapper;
  argv.push_back(TANDEM_PROXY_BIN);
  argv.push_back("--config=" + pod_dir + "/proxy.json");
  // As in an injected pod: /stats/prometheus merges the agent's page.
  argv.push_back(absl::StrCat("--agent-metrics-port=", pod.agent_metrics));
  pod.proxy.reset();  // a running proxy is killed first
  pod.proxy = std::make_unique<Subprocess>("tandem-proxy", argv, pod_dir + "/proxy.log");
  ASSERT_TRUE(pod.proxy->Start());
  pod.outbound = WaitForListeningPort(*pod.proxy, "outbound");
  pod.inbound = WaitForListeningPort(*pod.proxy, "inbound");
  pod.metrics = WaitForListeningPort(*pod.proxy, "metrics");
  pod.admin = WaitForListeningPort(*pod.proxy, "admin");
  ASSERT_TRUE(pod.outbound > 0 && pod.inbound > 0 && pod.metrics > 0 && pod.admin > 0)
      << "tandem-proxy did not come up";
}

void MeshTest::StartMesh(const std::string& server_config) {
  StartCa(mesh_root_dir_);
  client_.name = "client";
  server_.name = "server";
  StartPod(server_, "shop", "server",
           absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\"",
                        server_config));
  StartPod(client_, "shop", "client",
           absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", server_.inbound,
                        "\""));
  ASSERT_TRUE(
      WaitFor([&] { return Ready(client_) && Ready(server_); }, absl::Seconds(20)));
}

bool MeshTest::Ready(const Pod& pod) {
  return !HttpGet(pod.metrics, "/healthz/ready").empty();
}

double MeshTest::Metric(const Pod& pod, const std::string& sample) {
  return MetricValue(HttpGet(pod.metrics, "/metrics"), sample);
}

double MeshTest::AgentMetric(const Pod& pod, const std::string& sample) {
  return MetricValue(HttpGet(pod.agent_metrics, "/metrics"), sample);
}

}  // namespace tandem::testing
