// PolicyClient against a scripted MeshPolicyService on a Unix socket: it applies each
// version, ACKs what the sink accepts, NACKs what it refuses (the last good version
// stays), and comes back after the agent restarts. gRPC code: no <openssl/...> here.
#include "proxy/policy_client.h"

#include <optional>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tandem/mesh_policy.pb.h"
#include "tests/integration/fake_policy_service.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/test_grpc_server.h"

namespace tandem::proxy {
namespace {

using tandem::testing::FakePolicyService;
using tandem::testing::PolicyResponseFor;
using tandem::testing::RecordingPolicySink;
using tandem::testing::TestGrpcServer;
using tandem::testing::WaitFor;

constexpr char kClient[] = "spiffe://cluster.local/ns/shop/sa/client";

class PolicyClientTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/sds.sock"; }
  void TearDown() override {
    if (client_) client_->Stop();
    StopServer();
  }
  void StartServer() {
    auto server = TestGrpcServer<FakePolicyService>::Start(
        "unix:" + path_, grpc::InsecureServerCredentials());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    service_ = server_->service();
  }
  void StopServer() {
    server_.reset();
    service_ = nullptr;
  }
  void StartClient() {
    absl::StatusOr<std::unique_ptr<PolicyClient>> client =
        PolicyClient::Create(path_, "pod-a", &sink_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    client_->Start();
  }
  // Waits for the request that answers `nonce`.
  std::optional<policy::v1::PolicyRequest> AnswerTo(const std::string& nonce) {
    return service_->AnswerTo(nonce, absl::Seconds(5));
  }

  tandem::testing::TempDir temp_{"tandem-policy-client-test"};
  std::string dir_ = temp_.path(), path_;
  std::unique_ptr<TestGrpcServer<FakePolicyService>> server_;
  FakePolicyService* service_ = nullptr;  // owned by server_
  std::unique_ptr<PolicyClient> client_;
  RecordingPolicySink sink_;
};

TEST_F(PolicyClientTest, CreateRefusesARelativeSocketPath) {
  absl::StatusOr<std::unique_ptr<PolicyClient>> client =
      PolicyClient::Create("sds.sock", "pod-a", &sink_);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PolicyClientTest, AppliesEachVersionAndAcksIt) {
  StartServer();
  StartClient();
  ASSERT_TRUE(WaitFor([&] { return !service_->requests().empty(); }, absl::Seconds(5)));
  policy::v1::PolicyRequest first = service_->requests().front();
  EXPECT_EQ(first.node(), "pod-a");
  EXPECT_TRUE(first.response_nonce().empty());
  EXPECT_TRUE(first.version_info().empty());

  service_->Push(PolicyResponseFor("v1", "n1", kClient));
  std::optional<policy::v1::PolicyRequest> ack = AnswerTo("n1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->version_info(), "v1");
  EXPECT_TRUE(ack->error_detail().empty());
  EXPECT_EQ(sink_.version(), "v1");
  EXPECT_NE(client_->RenderMetrics().find("tandem_proxy_policy_stream_connected 1"),
            std::string::npos);
}

TEST_F(PolicyClientTest, NacksAPolicyItCannotApplyAndKeepsTheLastGood) {
  StartServer();
  StartClient();
  service_->Push(PolicyResponseFor("v1", "n1", kClient));
  ASSERT_TRUE(AnswerTo("n1").has_value());
  service_->Push(PolicyResponseFor("v2", "n2", RecordingPolicySink::kBad));
  std::optional<policy::v1::PolicyRequest> nack = AnswerTo("n2");
  ASSERT_TRUE(nack.has_value());
  EXPECT_EQ(nack->version_info(), "v1");
  EXPECT_EQ(nack->error_detail(),
            std::string("cannot apply ") + RecordingPolicySink::kBad);
  EXPECT_EQ(sink_.version(), "v1");
  EXPECT_EQ(sink_.applied(), 1);
  // The next good version is applied again.
  service_->Push(PolicyResponseFor("v3", "n3", kClient));
  std::optional<policy::v1::PolicyRequest> ack = AnswerTo("n3");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->version_info(), "v3");
  EXPECT_EQ(sink_.version(), "v3");
}

TEST_F(PolicyClientTest, ReconnectsAfterTheAgentRestartsNamingTheVersionInForce) {
  StartServer();
  StartClient();
  service_->Push(PolicyResponseFor("v1", "n1", kClient));
  ASSERT_TRUE(AnswerTo("n1").has_value());
  StopServer();
  StartServer();
  ASSERT_TRUE(WaitFor([&] { return !service_->requests().empty(); }, absl::Seconds(10)));
  EXPECT_EQ(service_->requests().front().version_info(), "v1");
  EXPECT_TRUE(service_->requests().front().response_nonce().empty());
  service_->Push(PolicyResponseFor("v2", "n2", kClient));
  EXPECT_TRUE(WaitFor([&] { return sink_.version() == "v2"; }, absl::Seconds(5)));
}

TEST_F(PolicyClientTest, StopsPromptlyWhileNoAgentExists) {
  StartClient();
  absl::SleepFor(absl::Milliseconds(300));  // let it fail a few connection attempts
  absl::Time start = absl::Now();
  client_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(sink_.applied(), 0);
}

}  // namespace
}  // namespace tandem::proxy
