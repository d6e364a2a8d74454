// PolicyRelay between a scripted CA (MeshPolicyService over gRPC+TLS on loopback) and
// real PolicyClients on the agent's SO_PEERCRED-checked socket: it relays each policy,
// forwards ACKs and NACKs, serves the cached policy while the CA is down, and comes
// back when the CA returns. gRPC code: no <openssl/...> here.
#include "agent/policy_relay.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/ca_client.h"
#include "agent/sds_server.h"
#include "common/metrics/registry.h"
#include "common/version.h"
#include "gtest/gtest.h"
#include "proxy/policy_client.h"
#include "tests/integration/fake_policy_service.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/tcp_forwarder.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/test_grpc_server.h"
#include "tests/support/test_ca.h"

namespace tandem::agent {
namespace {

using tandem::testing::FakePolicyService;
using tandem::testing::PolicyResponseFor;
using tandem::testing::RecordingPolicySink;
using tandem::testing::TestGrpcServer;
using tandem::testing::WaitFor;

constexpr char kClient[] = "spiffe://cluster.local/ns/shop/sa/client";

class PolicyRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TestCa>> ca = TestCa::Create("cluster.local");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    std::ofstream(dir_ + "/token") << "token-1\n";
    StartUpstream();

    PolicyRelayOptions options;
    options.ca.address = absl::StrCat("127.0.0.1:", upstream_service_.port());
    options.ca.root_pem = ca_->root_pem();
    options.token_file = dir_ + "/token";
    options.node = "agent-a";
    options.registry = &registry_;
    options.on_ca_reached = [this] { ++ca_reached_; };
    if (share_with_ca_client_) {
      absl::StatusOr<std::unique_ptr<CaClient>> client = CaClient::Create(options.ca);
      ASSERT_TRUE(client.ok()) << client.status();
      ca_client_ = *std::move(client);
      options.channel = ca_client_->channel();
    }
    absl::StatusOr<std::unique_ptr<PolicyRelay>> relay = PolicyRelay::Create(options);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    relay_->Start();

    SdsServerOptions sds_options;
    sds_options.socket_path = dir_ + "/run/sds.sock";
    sds_options.registry = &registry_;
    sds_options.extra_services = {relay_->service()};
    absl::StatusOr<std::unique_ptr<SdsServer>> sds = SdsServer::Create(sds_options);
    ASSERT_TRUE(sds.ok()) << sds.status();
    sds_ = *std::move(sds);
    ASSERT_TRUE(sds_->Start().ok());
  }
  void TearDown() override {
    proxies_.clear();
    if (sds_) sds_->Stop();
    if (relay_) relay_->Stop();
    if (ca_client_) ca_client_->Shutdown();
    StopUpstream();
  }
  // Serves the fake CA on a new port of 127.0.0.1 behind the relay's stable CA address.
  void StartUpstream() {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({ca_->server_key_pem(), ca_->server_chain_pem()});
    auto server = TestGrpcServer<FakePolicyService>::Start("127.0.0.1:0",
                                                           grpc::SslServerCredentials(ssl));
    ASSERT_TRUE(server.ok()) << server.status();
    upstream_server_ = *std::move(server);
    upstream_ = upstream_server_->service();
    upstream_service_.set_target_port(upstream_server_->port());
  }
  void StopUpstream() {
    upstream_server_.reset();
    upstream_ = nullptr;
  }
  // Connects a proxy's policy client that delivers to `sink`.
  void ConnectProxy(RecordingPolicySink* sink) {
    absl::StatusOr<std::unique_ptr<proxy::PolicyClient>> client =
        proxy::PolicyClient::Create(dir_ + "/run/sds.sock", "pod-a", sink);
    ASSERT_TRUE(client.ok()) << client.status();
    (*client)->Start();
    proxies_.push_back(*std::move(client));
  }
  // tandem_agent_ca_reachable; -1 before the first call to the CA ended.
  double CaReachable() {
    return tandem::testing::MetricValue(registry_.RenderPrometheus(),
                                        "tandem_agent_ca_reachable");
  }
  // Waits for the CA to receive the answer to `nonce`.
  std::optional<policy::v1::PolicyRequest> UpstreamAnswerTo(const std::string& nonce) {
    return upstream_->AnswerTo(nonce, absl::Seconds(10));
  }

  tandem::testing::TempDir temp_{"tandem-policy-relay-test"};
  std::string dir_ = temp_.path();
  metrics::Registry registry_;
  std::unique_ptr<TestCa> ca_;
  std::unique_ptr<TestGrpcServer<FakePolicyService>> upstream_server_;
  FakePolicyService* upstream_ = nullptr;  // owned by upstream_server_
  tandem::testing::TcpForwarder upstream_service_;  // the relay's CA address
  bool share_with_ca_client_ = false;  // set before SetUp: the relay uses ca_client_'s
  std::unique_ptr<CaClient> ca_client_;
  std::atomic<int> ca_reached_{0};  // on_ca_reached calls
  std::unique_ptr<PolicyRelay> relay_;
  std::unique_ptr<SdsServer> sds_;
  std::vector<std::unique_ptr<proxy::PolicyClient>> proxies_;
};

TEST_F(PolicyRelayTest, CreateRefusesWithoutCaRoots) {
  PolicyRelayOptions options;
  EXPECT_EQ(PolicyRelay::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PolicyRelayTest, RelaysPoliciesAndForwardsAcksAndNacksToTheCa) {
  RecordingPolicySink sink;
  ConnectProxy(&sink);
  ASSERT_TRUE(WaitFor([&] { return !upstream_->requests().empty(); }, absl::Seconds(10)));
  EXPECT_EQ(upstream_->authorizations().front(), "Bearer token-1");
  EXPECT_EQ(upstream_->requests().front().node(), "agent-a");

  upstream_->Push(PolicyResponseFor("v1", "n1", kClient));
  std::optional<policy::v1::PolicyRequest> ack = UpstreamAnswerTo("n1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->version_info(), "v1");
  EXPECT_TRUE(ack->error_detail().empty());
  EXPECT_EQ(sink.version(), "v1");
  EXPECT_TRUE(relay_->upstream_up());

  upstream_->Push(PolicyResponseFor("v2", "n2", RecordingPolicySink::kBad));
  std::optional<policy::v1::PolicyRequest> nack = UpstreamAnswerTo("n2");
  ASSERT_TRUE(nack.has_value());
  EXPECT_EQ(nack->version_info(), "v1");
  EXPECT_NE(nack->error_detail().find("cannot apply"), std::string::npos);
  EXPECT_EQ(relay_->nacks(), 1u);
  EXPECT_EQ(sink.version(), "v1");
}

TEST_F(PolicyRelayTest, ReportsItsNodeAndUpdatesItOnANewCertificateAndOnItsProxy) {
  // The node the CA last heard of, once the upstream stream is open.
  auto last_node = [&]() -> std::optional<policy::v1::Node> {
    std::vector<policy::v1::PolicyRequest> requests = upstream_->requests();
    for (auto r = requests.rbegin(); r != requests.rend(); ++r) {
      if (r->has_node_info()) return r->node_info();
    }
    return std::nullopt;
  };
  ASSERT_TRUE(WaitFor([&] { return last_node().has_value(); }, absl::Seconds(10)));
  EXPECT_EQ(last_node()->id(), "agent-a");
  EXPECT_EQ(last_node()->metadata().at("AGENT_VERSION"), Version());
  EXPECT_EQ(last_node()->user_agent_name(), "");
  EXPECT_EQ(last_node()->metadata().count("CERT_SERIAL"), 0u);

  relay_->SetCertificate("1f3a", absl::FromUnixSeconds(1800000000));
  ASSERT_TRUE(WaitFor([&] { return last_node()->metadata().count("CERT_SERIAL") == 1; },
                      absl::Seconds(10)));
  EXPECT_EQ(last_node()->metadata().at("CERT_SERIAL"), "1f3a");
  EXPECT_EQ(last_node()->metadata().at("CERT_NOT_AFTER"), "2027-01-15T08:00:00Z");
  // A node update is no answer: it carries no nonce.
  EXPECT_TRUE(upstream_->requests().back().response_nonce().empty());

  RecordingPolicySink sink;
  ConnectProxy(&sink);
  ASSERT_TRUE(WaitFor([&] { return last_node()->user_agent_name() == "tandem-proxy"; },
                      absl::Seconds(10)));
  EXPECT_EQ(last_node()->user_agent_version(), Version());
  EXPECT_EQ(last_node()->metadata().at("CERT_SERIAL"), "1f3a");

  proxies_.clear();  // the proxy goes away
  EXPECT_TRUE(
      WaitFor([&] { return last_node()->user_agent_name().empty(); }, absl::Seconds(10)));
}

TEST_F(PolicyRelayTest, ServesTheCachedPolicyWhileTheCaIsDownAndResumesAfter) {
  RecordingPolicySink first;
  ConnectProxy(&first);
  ASSERT_TRUE(WaitFor([&] { return upstream_->streams() >= 1; }, absl::Seconds(10)));
  upstream_->Push(PolicyResponseFor("v1", "n1", kClient));
  ASSERT_TRUE(UpstreamAnswerTo("n1").has_value());

  EXPECT_EQ(CaReachable(), 1);
  EXPECT_EQ(ca_reached_.load(), 1);

  StopUpstream();
  ASSERT_TRUE(WaitFor([&] { return !relay_->upstream_up(); }, absl::Seconds(10)));
  // The re-opened stream finds no CA: the gauge the TandemCaUnreachable alert reads.
  EXPECT_TRUE(WaitFor([&] { return CaReachable() == 0; }, absl::Seconds(10)));
  RecordingPolicySink late;  // a proxy that (re)connects while the CA is down
  ConnectProxy(&late);
  EXPECT_TRUE(WaitFor([&] { return late.version() == "v1"; }, absl::Seconds(10)));

  StartUpstream();
  ASSERT_TRUE(WaitFor([&] { return !upstream_->requests().empty(); }, absl::Seconds(15)));
  // The new stream says what the proxies have in force, authenticated again.
  EXPECT_EQ(upstream_->requests().front().version_info(), "v1");
  EXPECT_EQ(upstream_->authorizations().front(), "Bearer token-1");
  upstream_->Push(PolicyResponseFor("v2", "n2", kClient));
  EXPECT_TRUE(WaitFor([&] { return first.version() == "v2" && late.version() == "v2"; },
                      absl::Seconds(10)));
  // Counted after the write returns, which may be after the proxy has applied it.
  EXPECT_TRUE(
      WaitFor([&] { return relay_->responses_relayed() >= 4u; }, absl::Seconds(5)))
      << relay_->responses_relayed();
  EXPECT_EQ(CaReachable(), 1);
  // The stream that came back told the agent's renewal loop too.
  EXPECT_GE(ca_reached_.load(), 2);
}

class PolicyRelaySharingTest : public PolicyRelayTest {
 protected:
  void SetUp() override {
    share_with_ca_client_ = true;
    PolicyRelayTest::SetUp();
  }
};

TEST_F(PolicyRelaySharingTest, RidesTheCaClientsConnectionToTheCa) {
  ASSERT_TRUE(WaitFor([&] { return upstream_->streams() >= 1; }, absl::Seconds(10)));
  // This CA serves no certificates: UNIMPLEMENTED is its answer, on the same connection.
  absl::StatusOr<std::vector<std::string>> chain =
      ca_client_->CreateCertificate("csr", "token-1", 3600);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kUnimplemented) << chain.status();
  // One TLS connection per agent: a CA restart costs it one handshake, not two.
  EXPECT_EQ(upstream_service_.accepted(), 1);
}

}  // namespace
}  // namespace tandem::agent
