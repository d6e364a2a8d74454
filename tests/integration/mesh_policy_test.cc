// Mesh policy end to end with real processes on loopback: tandem-ca serves the policy
// file (--policy-file) and keeps revocations (--state-dir); each agent relays its
// workload's policy to its proxy, which applies it to new connections.
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {
namespace {

constexpr char kInboundDenied[] =
    "tandem_proxy_handshake_failures_total{direction=\"inbound\","
    "reason=\"not_authorized\"}";
constexpr char kInboundRevoked[] =
    "tandem_proxy_handshake_failures_total{direction=\"inbound\",reason=\"revoked\"}";
constexpr char kAccepted[] = "tandem_proxy_policy_updates_total{result=\"accepted\"}";
constexpr char kRefused[] = "tandem_proxy_policy_updates_total{result=\"refused\"}";

class MeshPolicyTest : public MeshTest {
 protected:
  void SetUp() override {
    MeshTest::SetUp();
    policy_file_ = dir_ + "/mesh-policy.yaml";
    extra_ca_args_ = {"--policy-file=" + policy_file_, "--policy-poll=200ms",
                      "--state-dir=" + dir_ + "/state", "--admin=127.0.0.1:0"};
    extra_proxy_json_ = ", \"policy_from_agent\": true";
  }
  // Writes a policy file whose server workload admits `allowed` on the app's port;
  // revocations close open connections.
  void WritePolicy(const std::string& allowed) {
    std::string text = absl::StrCat(
        "revocation:\n"
        "  closeOpenConnections: true\n"
        "workloads:\n"
        "  - namespace: shop\n"
        "    serviceAccount: server\n"
        "    inboundPorts:\n"
        "      - port: ",
        echo_.port(), "\n        allow: [", allowed, "]\n");
    // Written aside and renamed, so the CA never reads half a file.
    std::ofstream(policy_file_ + ".tmp") << text;
    std::rename((policy_file_ + ".tmp").c_str(), policy_file_.c_str());
  }
  // The policy in force in `pod`'s proxy, as its admin endpoint shows it.
  std::string PolicyJson(const Pod& pod) { return HttpGet(pod.admin, "/policy"); }
  // True when the client reaches the server's app through the mesh, every time.
  bool Echoes() {
    TrafficReport r = RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0);
    return r.short_ok > 0 && r.short_failed == 0;
  }
  // Waits until the server's proxy has applied a policy allowing `allowed`.
  bool ServerApplied(const std::string& allowed) {
    return WaitFor([&] { return PolicyJson(server_).find(allowed) != std::string::npos; },
                   absl::Seconds(20));
  }

  // Revokes `spiffe_id` the way an operator does, with the CA's CLI, at the admin
  // port the running CA logged.
  bool Revoke(const std::string& spiffe_id) {
    int admin = WaitForListeningPort(*ca_, "admin");
    std::string log = dir_ + "/revoke.log";
    std::string command =
        absl::StrCat(TANDEM_CA_BIN, " revoke --admin=127.0.0.1:", admin,
                     " --spiffe-id=", spiffe_id, " --reason=test > ", log, " 2>&1");
    if (admin > 0 && system(command.c_str()) == 0) return true;
    std::ifstream in(log);
    std::cerr << "tandem-ca revoke failed: " << in.rdbuf() << "\n";
    return false;
  }

  std::string policy_file_;
};

TEST_F(MeshPolicyTest, PolicyChangeDeniesAPeerThatWasAllowedAndAllowsItAgain) {
  WritePolicy("spiffe://cluster.local/ns/shop/sa/client");
  StartMesh();
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/shop/sa/client"))
      << PolicyJson(server_);
  EXPECT_NE(PolicyJson(server_).find("\"source\": \"control plane\""), std::string::npos);
  EXPECT_TRUE(Echoes());

  WritePolicy("spiffe://cluster.local/ns/other/*");
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/other/*")) << PolicyJson(server_);
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0).short_ok, 0);
  EXPECT_GT(Metric(server_, kInboundDenied), 0);

  WritePolicy("spiffe://cluster.local/ns/shop/*");
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/shop/*")) << PolicyJson(server_);
  EXPECT_TRUE(Echoes());
  EXPECT_EQ(Metric(server_, kRefused), 0);
}

TEST_F(MeshPolicyTest, ProxyThatNacksKeepsServingWithItsLastGoodPolicy) {
  WritePolicy("spiffe://cluster.local/ns/shop/sa/client");
  StartMesh();
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/shop/sa/client"));
  std::string good = PolicyJson(server_);
  // Valid for the CA (federation), but this proxy has no roots for partner.example.
  WritePolicy("spiffe://partner.example/ns/a/sa/b");
  ASSERT_TRUE(WaitFor([&] { return Metric(server_, kRefused) >= 1; }, absl::Seconds(20)))
      << server_.proxy->Log();
  EXPECT_NE(server_.proxy->Log().find("no roots for trust domain"), std::string::npos);
  EXPECT_EQ(PolicyJson(server_), good);
  EXPECT_TRUE(Echoes());
  EXPECT_TRUE(WaitFor(
      [&] {
        return MetricValue(HttpGet(server_.agent_metrics, "/metrics"),
                           "tandem_agent_policy_answers_total{result=\"nack\"}") >= 1;
      },
      absl::Seconds(10)));
}

TEST_F(MeshPolicyTest, MalformedPolicyFileIsRefusedAndChangesNothing) {
  WritePolicy("spiffe://cluster.local/ns/shop/sa/client");
  StartMesh();
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/shop/sa/client"));
  double accepted = Metric(server_, kAccepted);
  std::string good = PolicyJson(server_);
  std::ofstream(policy_file_) << "workloads: [ {namespace: shop, inboundPorts: 7\n";
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(HttpGet(ca_metrics_, "/metrics"),
                           "tandem_ca_policy_loads_total{result=\"refused\"}") >= 1;
      },
      absl::Seconds(20)))
      << ca_->Log();
  EXPECT_EQ(PolicyJson(server_), good);
  EXPECT_EQ(Metric(server_, kAccepted), accepted);
  EXPECT_TRUE(Echoes());
}

TEST_F(MeshPolicyTest, RevokedIdentityIsRefusedAndItsOpenConnectionsClosed) {
  extra_agent_flag_ = "--validity=60s";  // outlives the test: refusals must be revocation
  WritePolicy("spiffe://cluster.local/ns/shop/*");
  StartMesh();
  ASSERT_TRUE(ServerApplied("spiffe://cluster.local/ns/shop/*"));
  int open_fd = ConnectLoopback(client_.outbound);
  ASSERT_GE(open_fd, 0);
  ASSERT_EQ(send(open_fd, "ping", 4, MSG_NOSIGNAL), 4);
  char buf[4];
  ASSERT_EQ(read(open_fd, buf, 4), 4);

  absl::Time revoked_at = absl::Now();
  ASSERT_TRUE(Revoke("spiffe://cluster.local/ns/shop/sa/client"));
  // Bounded: the CA pushes within a poll interval, the agent relays at once.
  ASSERT_TRUE(WaitFor(
      [&] { return Metric(server_, "tandem_proxy_connections_revoked_total") >= 1; },
      absl::Seconds(10)))
      << PolicyJson(server_);
  std::cerr << "revocation reached the server proxy in "
            << absl::FormatDuration(absl::Now() - revoked_at) << "\n";
  EXPECT_LE(read(open_fd, buf, 4), 0) << "the revoked peer's open connection is closed";
  close(open_fd);
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0).short_ok, 0);
  EXPECT_GT(Metric(server_, kInboundRevoked), 0);
}

TEST_F(MeshPolicyTest, CaRestartLosesNoRevocation) {
  extra_agent_flag_ = "--validity=60s";
  WritePolicy("spiffe://cluster.local/ns/shop/*");
  StartMesh();
  ASSERT_TRUE(Revoke("spiffe://cluster.local/ns/shop/sa/client"));
  ASSERT_TRUE(WaitFor(
      [&] {
        return PolicyJson(server_).find("\"revocations\": [{") != std::string::npos;
      },
      absl::Seconds(10)));
  ca_.reset();
  StartCa();
  // A server pod started after the restart learns the revocation from the new CA (the
  // policy file holds none: it can only come from the CA's state directory).
  server_.proxy.reset();
  server_.agent.reset();
  StartPod(server_, "shop", "server",
           absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""));
  ASSERT_TRUE(WaitFor(
      [&] {
        return PolicyJson(server_).find(
                   "spiffe://cluster.local/ns/shop/sa/client\", "
                   "\"expires") != std::string::npos;
      },
      absl::Seconds(20)))
      << PolicyJson(server_);
}

}  // namespace
}  // namespace tandem::testing
