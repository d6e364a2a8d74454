#ifndef TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_
#define TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_

// The mesh with its three real processes on loopback: tandem-ca, and pods made of a
// tandem-agent and a tandem-proxy, for tests that link it and define TANDEM_CA_BIN,
// TANDEM_AGENT_BIN and TANDEM_PROXY_BIN.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/jwt.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {

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
  // Starts tandem-ca with its root in dir_/<root_dir> (made on first start), also
  // publishing the roots in `extra_roots` (a PEM file) when set. Writes the bundle it
  // serves to dir_/ca-root.pem unless `keep_ca_root`.
  void StartCa(const std::string& root_dir = "ca", const std::string& extra_roots = "",
               bool keep_ca_root = false) {
    std::vector<std::string> args = {TANDEM_CA_BIN,
                                     "serve",
                                     "--root-dir=" + dir_ + "/" + root_dir,
                                     absl::StrCat("--listen=127.0.0.1:", ca_port_),
                                     absl::StrCat("--metrics=127.0.0.1:", ca_metrics_),
                                     "--token-public-key=" + dir_ + "/token-key.pub",
                                     "--default-ttl=3s",
                                     "--max-ttl=1h"};
    if (!extra_roots.empty()) args.push_back("--extra-roots=" + extra_roots);
    args.insert(args.end(), extra_ca_args_.begin(), extra_ca_args_.end());
    ca_ = std::make_unique<Subprocess>("tandem-ca", args, dir_ + "/" + root_dir + ".log");
    ASSERT_TRUE(ca_->Start());
    ASSERT_TRUE(WaitFor([&] { return !HttpGet(ca_metrics_, "/healthz/ready").empty(); },
                        absl::Seconds(20)))
        << ca_->Log();
    if (!keep_ca_root)
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
            absl::StrCat("--metrics=127.0.0.1:", pod.agent_metrics), extra_agent_flag_},
        pod_dir + "/agent.log");
    ASSERT_TRUE(pod.agent->Start());
    Write(pod_dir + "/proxy.json",
          absl::StrCat("{\"outbound_address\": \"127.0.0.1:", pod.outbound,
                       "\", \"inbound_address\": \"127.0.0.1:", pod.inbound,
                       "\", \"metrics_address\": \"127.0.0.1:", pod.metrics,
                       "\", \"health_address\": \"127.0.0.1:", PickUnusedPort(),
                       "\", \"admin_address\": \"127.0.0.1:", pod.admin,
                       "\", \"workers\": 2, \"socket_mark\": 0, \"sds_socket\": \"",
                       pod_dir, "/sds/sds.sock\"", routing, extra_proxy_json_, "}"));
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
  // One more flag for every agent (a no-op default unless a test sets it).
  std::string extra_agent_flag_ = "--renew-fraction=0.5";
  // More tandem-ca flags, and more proxy config fields (", \"name\": value").
  std::vector<std::string> extra_ca_args_;
  std::string extra_proxy_json_;
  int ca_port_ = 0, ca_metrics_ = 0;
  std::unique_ptr<Subprocess> ca_;
  EchoServer echo_;
  Pod client_, server_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_
