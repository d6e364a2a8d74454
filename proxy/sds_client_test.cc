// SdsClient against a scripted SDS server on a Unix socket: what it asks for, when it
// installs, how it ACKs and NACKs, and that it comes back after the server restarts.
// gRPC code: no <openssl/...> here.
#include "proxy/sds_client.h"

#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "envoy/sds_service.grpc.pb.h"
#include "envoy/secret.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/scripted_stream.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/recording_secret_sink.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/test_grpc_server.h"

namespace tandem::proxy {
namespace {

namespace discovery = ::envoy::service::discovery::v3;
namespace tls = ::envoy::extensions::transport_sockets::tls::v3;
using tandem::testing::TestGrpcServer;
using tandem::testing::WaitFor;

constexpr char kSecretType[] =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

using RecordingSink = tandem::testing::RecordingSecretSink;

// An SDS server the test scripts (see ScriptedStream). Threading: as ScriptedStream.
class ScriptedSdsService final
    : public tandem::testing::ScriptedStream<
          ::envoy::service::secret::v3::SecretDiscoveryService::Service,
          discovery::DiscoveryRequest, discovery::DiscoveryResponse> {
 public:
  grpc::Status StreamSecrets(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<discovery::DiscoveryResponse, discovery::DiscoveryRequest>*
          stream) override {
    return Serve(context, stream);
  }
};

discovery::DiscoveryResponse Response(const std::string& version,
                                      const std::string& nonce, bool with_cert,
                                      bool with_root) {
  discovery::DiscoveryResponse response;
  response.set_version_info(version);
  response.set_nonce(nonce);
  response.set_type_url(kSecretType);
  if (with_cert) {
    tls::Secret cert;
    cert.set_name("default");
    cert.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_bytes(
        "chain-" + version);
    cert.mutable_tls_certificate()->mutable_private_key()->set_inline_bytes("key-" +
                                                                            version);
    response.add_resources()->PackFrom(cert);
  }
  if (with_root) {
    tls::Secret root;
    root.set_name("ROOTCA");
    root.mutable_validation_context()->mutable_trusted_ca()->set_inline_bytes("roots-" +
                                                                              version);
    response.add_resources()->PackFrom(root);
  }
  return response;
}

class SdsClientTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/sds.sock"; }
  void TearDown() override {
    if (client_) client_->Stop();
    StopServer();
  }
  void StartServer() {
    auto server = TestGrpcServer<ScriptedSdsService>::Start(
        "unix:" + path_, grpc::InsecureServerCredentials());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    service_ = server_->service();
  }
  void StopServer() {
    server_.reset();
    service_ = nullptr;
  }
  void StartClient(SdsReconnectOptions reconnect = {}) {
    absl::StatusOr<std::unique_ptr<SdsClient>> client =
        SdsClient::Create(path_, &sink_, std::move(reconnect));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    client_->Start();
  }
  // Waits for the request that answers `nonce`.
  std::optional<discovery::DiscoveryRequest> AnswerTo(const std::string& nonce) {
    return service_->AnswerTo(nonce, absl::Seconds(5));
  }

  tandem::testing::TempDir temp_{"tandem-sds-client-test"};
  std::string dir_ = temp_.path(), path_;
  std::unique_ptr<TestGrpcServer<ScriptedSdsService>> server_;
  ScriptedSdsService* service_ = nullptr;  // owned by server_
  std::unique_ptr<SdsClient> client_;
  RecordingSink sink_;
};

TEST_F(SdsClientTest, CreateRefusesARelativeSocketPath) {
  absl::StatusOr<std::unique_ptr<SdsClient>> client =
      SdsClient::Create("sds.sock", &sink_);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SdsClientTest, AsksForDefaultAndRootcaWithTheSecretTypeUrl) {
  StartServer();
  StartClient();
  ASSERT_TRUE(WaitFor([&] { return !service_->requests().empty(); }, absl::Seconds(5)));
  discovery::DiscoveryRequest first = service_->requests().front();
  EXPECT_EQ(first.type_url(), kSecretType);
  ASSERT_EQ(first.resource_names_size(), 2);
  EXPECT_EQ(first.resource_names(0), "default");
  EXPECT_EQ(first.resource_names(1), "ROOTCA");
  EXPECT_TRUE(first.response_nonce().empty());
}

TEST_F(SdsClientTest, InstallsTheSecretOnlyOnceBothResourcesHaveArrived) {
  StartServer();
  StartClient();
  service_->Push(Response("1", "n1", /*with_cert=*/true, /*with_root=*/false));
  std::optional<discovery::DiscoveryRequest> ack = AnswerTo("n1");
  ASSERT_TRUE(ack.has_value());
  EXPECT_FALSE(ack->has_error_detail());
  EXPECT_EQ(sink_.count(), 0);
  service_->Push(Response("2", "n2", /*with_cert=*/false, /*with_root=*/true));
  ASSERT_TRUE(WaitFor([&] { return sink_.count() == 1; }, absl::Seconds(5)));
  WorkloadSecretPem secret = sink_.last();
  EXPECT_EQ(secret.cert_chain, "chain-1");
  EXPECT_EQ(secret.private_key, "key-1");
  EXPECT_EQ(secret.trust_bundle, "roots-2");
}

TEST_F(SdsClientTest, AcksWithTheAppliedVersionAndNonceAndRestatesTheNames) {
  StartServer();
  StartClient();
  service_->Push(Response("v7", "n7", true, true));
  std::optional<discovery::DiscoveryRequest> ack = AnswerTo("n7");
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->version_info(), "v7");
  EXPECT_FALSE(ack->has_error_detail());
  EXPECT_EQ(ack->resource_names_size(), 2);
  EXPECT_EQ(ack->type_url(), kSecretType);
  EXPECT_EQ(sink_.count(), 1);
}

TEST_F(SdsClientTest, NacksASinkRefusalWithItsErrorAndKeepsTheAppliedVersion) {
  StartServer();
  StartClient();
  service_->Push(Response("v1", "n1", true, true));
  ASSERT_TRUE(AnswerTo("n1").has_value());
  sink_.set_refuse(true);
  service_->Push(Response("v2", "n2", true, true));
  std::optional<discovery::DiscoveryRequest> nack = AnswerTo("n2");
  ASSERT_TRUE(nack.has_value());
  ASSERT_TRUE(nack->has_error_detail());
  EXPECT_EQ(nack->error_detail().message(), "refused by test");
  EXPECT_EQ(nack->version_info(), "v1");
  EXPECT_EQ(sink_.count(), 1);
  EXPECT_EQ(sink_.last().cert_chain, "chain-v1");
}

TEST_F(SdsClientTest, NacksAResponseOfAnotherType) {
  StartServer();
  StartClient();
  discovery::DiscoveryResponse response = Response("v1", "n1", true, true);
  response.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  service_->Push(response);
  std::optional<discovery::DiscoveryRequest> nack = AnswerTo("n1");
  ASSERT_TRUE(nack.has_value());
  EXPECT_TRUE(nack->has_error_detail());
  EXPECT_EQ(sink_.count(), 0);
}

TEST_F(SdsClientTest, ReconnectsAfterTheServerRestartsAndIsFedAgain) {
  StartServer();
  StartClient();
  service_->Push(Response("v1", "n1", true, true));
  ASSERT_TRUE(WaitFor([&] { return sink_.count() == 1; }, absl::Seconds(5)));
  StopServer();
  StartServer();
  ASSERT_TRUE(WaitFor([&] { return service_->streams() >= 1; }, absl::Seconds(10)));
  service_->Push(Response("v1", "n1", true, true));  // a restarted agent starts over
  EXPECT_TRUE(WaitFor([&] { return sink_.count() == 2; }, absl::Seconds(5)));
}

TEST_F(SdsClientTest, RedialsWithinAQuarterOfWhatTheCertificateHasLeft) {
  StartServer();
  service_->Shutdown();  // every stream ends at once, before any secret
  SdsReconnectOptions reconnect;
  // A certificate forever 100 ms from its expiry: each wait is cut to the 50 ms floor.
  reconnect.certificate_not_after = [] { return absl::Now() + absl::Milliseconds(100); };
  StartClient(std::move(reconnect));
  // Uncapped (100 ms doubling to 5 s, jitter down to half) 30 streams take a minute or
  // more; capped, about 1.5 s.
  EXPECT_TRUE(WaitFor([&] { return service_->streams() >= 30; }, absl::Seconds(30)))
      << service_->streams() << " streams";
}

TEST_F(SdsClientTest, RedialsEvery200MsAtMostOnceTheCertificateHasExpired) {
  StartServer();
  service_->Shutdown();  // every stream ends at once, before any secret
  SdsReconnectOptions reconnect;
  const absl::Time expired = absl::Now() - absl::Hours(1);
  reconnect.certificate_not_after = [expired] { return expired; };
  StartClient(std::move(reconnect));
  // Uncapped 30 streams take a minute or more; at 100-200 ms apart, 3-6 s.
  EXPECT_TRUE(WaitFor([&] { return service_->streams() >= 30; }, absl::Seconds(30)))
      << service_->streams() << " streams";
}

TEST_F(SdsClientTest, StopsPromptlyWhileNoServerExists) {
  StartClient();
  absl::SleepFor(absl::Milliseconds(300));  // let it fail a few connection attempts
  absl::Time start = absl::Now();
  client_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(sink_.count(), 0);
}

}  // namespace
}  // namespace tandem::proxy
