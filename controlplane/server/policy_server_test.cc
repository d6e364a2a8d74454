// MeshPolicyService on the real gRPC+TLS server of tandem-ca, in-process, with a real
// client. gRPC code: no <openssl/...> here.
#include "controlplane/server/policy_server.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/auth/jwt.h"
#include "controlplane/server/ca_server.h"
#include "tests/support/fake_https_server.h"
#include "gtest/gtest.h"
#include "istio/ca.grpc.pb.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace tandem::controlplane {
namespace {

using tandem::policy::v1::MeshPolicyService;
using tandem::policy::v1::PolicyRequest;
using tandem::policy::v1::PolicyResponse;

constexpr char kPolicy[] = R"(
defaults:
  inboundMode: STRICT
workloads:
  - namespace: shop
    inboundPorts: [{port: 8080, allow: ["spiffe://cluster.local/ns/shop/*"]}]
)";

// Returns true once `done` holds, checking every 10 ms for at most 10 s.
template <typename F>
bool WaitFor(F done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    usleep(10'000);
  }
  return done();
}

// One StreamPolicy call; every blocking step is bounded by the call's deadline.
struct PolicyStream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<PolicyRequest, PolicyResponse>> stream;

  bool Send(const std::string& version, const std::string& nonce,
            const std::string& error = "") {
    PolicyRequest request;
    request.set_node("pod-1");
    request.set_version_info(version);
    request.set_response_nonce(nonce);
    request.set_error_detail(error);
    return stream->Write(request);
  }
  // Reads the next response; an empty version when the stream ended.
  PolicyResponse Next() {
    PolicyResponse response;
    if (!stream->Read(&response)) response.Clear();
    return response;
  }
};

class PolicyServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-policy-server-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    policy_path_ = dir_ + "/mesh-policy.yaml";
    WritePolicy(kPolicy);
    signing_key_ =
        NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create(policy_path_);
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
    revocations_ = *RevocationStore::Open({dir_ + "/state", absl::Hours(4)}, absl::Now());
    StartServer();
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  void StartServer(const TokenReviewAuthenticator::Options* review = nullptr) {
    if (server_) server_->Stop();
    CaServerOptions options;
    options.core.root_dir = dir_ + "/root";
    options.core.max_ttl = absl::Hours(4);
    options.listen_address = "127.0.0.1:0";
    if (review != nullptr) {
      options.token_review = *review;
    } else {
      options.token_public_key_pem = *PublicKeyPemOf(signing_key_);
    }
    options.policy = watcher_.get();
    options.revocations = revocations_.get();
    options.policy_poll_interval = poll_interval_;
    absl::StatusOr<std::unique_ptr<CaServer>> server = CaServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->Start().ok());
  }
  void WritePolicy(const std::string& text) {
    // Written whole and renamed in, as an operator (or a ConfigMap) replaces it.
    std::ofstream(policy_path_ + ".new") << text;
    std::filesystem::rename(policy_path_ + ".new", policy_path_);
  }
  std::shared_ptr<grpc::Channel> Channel(const std::string& key = "",
                                         const std::string& chain = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = server_->core().trust_bundle_pem();
    ssl.pem_private_key = key;
    ssl.pem_cert_chain = chain;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("tandem-ca");
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::SslCredentials(ssl), args);
  }
  std::string Token(const ServiceAccount& sa) {
    return *MintServiceAccountToken(signing_key_, sa, "istio-ca", "tandem", absl::Now(),
                                    absl::Hours(1));
  }
  // Opens a stream as `sa` (no token when sa.ns is empty) and sends the first request.
  std::unique_ptr<PolicyStream> Open(const ServiceAccount& sa,
                                     std::shared_ptr<grpc::Channel> channel = nullptr) {
    auto s = std::make_unique<PolicyStream>();
    s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!sa.ns.empty()) s->context.AddMetadata("authorization", "Bearer " + Token(sa));
    stubs_.push_back(MeshPolicyService::NewStub(channel ? channel : Channel()));
    s->stream = stubs_.back()->StreamPolicy(&s->context);
    s->Send("", "");
    return s;
  }
  bool MetricsContain(const std::string& line) {
    return server_->RenderMetrics().find(line + "\n") != std::string::npos;
  }
  std::vector<PolicyServer::StreamInfo> Streams() {
    return server_->policy_server()->Streams();
  }

  std::string dir_;
  std::string policy_path_;
  std::string signing_key_;
  std::unique_ptr<PolicyWatcher> watcher_;
  std::unique_ptr<RevocationStore> revocations_;
  std::unique_ptr<CaServer> server_;
  absl::Duration poll_interval_ = absl::Milliseconds(20);
  std::vector<std::unique_ptr<MeshPolicyService::Stub>> stubs_;
};

TEST_F(PolicyServerTest, FirstResponseCarriesTheCallersPolicyAndAckIsTracked) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty()) << s->stream->Finish().error_message();
  EXPECT_EQ(first.version_info(), PolicyVersion(first.policy()));
  EXPECT_FALSE(first.nonce().empty());
  ASSERT_EQ(first.policy().inbound_ports_size(), 1);
  EXPECT_EQ(first.policy().inbound_ports(0).port(), 8080u);
  EXPECT_EQ(first.policy().default_inbound_mode(), tandem::config::STRICT);

  ASSERT_TRUE(s->Send(first.version_info(), first.nonce()));
  ASSERT_TRUE(WaitFor([&] {
    std::vector<PolicyServer::StreamInfo> streams = Streams();
    return streams.size() == 1 && streams[0].acked_version == first.version_info();
  }));
  EXPECT_EQ(Streams()[0].spiffe_id, "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_EQ(Streams()[0].node, "pod-1");
  EXPECT_NE(server_->policy_server()->StreamsJson().find(
                absl::StrCat("\"acked_version\":\"", first.version_info(), "\"")),
            std::string::npos)
      << server_->policy_server()->StreamsJson();
  EXPECT_TRUE(MetricsContain("tandem_ca_policy_acks_total 1"));
  EXPECT_TRUE(MetricsContain("tandem_ca_policy_streams 1"));
  EXPECT_TRUE(MetricsContain(absl::StrCat("tandem_ca_policy_info{version=\"",
                                          watcher_->current()->version(), "\"} 1")));
}

TEST_F(PolicyServerTest, NackIsCountedAndRemembered) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  ASSERT_TRUE(s->Send("", first.nonce(), "inboundPorts[0]: unsupported mode"));
  ASSERT_TRUE(WaitFor([&] { return MetricsContain("tandem_ca_policy_nacks_total 1"); }));
  EXPECT_EQ(Streams()[0].last_nack_error, "inboundPorts[0]: unsupported mode");
  EXPECT_EQ(Streams()[0].acked_version, "");
  EXPECT_TRUE(MetricsContain("tandem_ca_policy_acks_total 0"));
}

TEST_F(PolicyServerTest, NackRemembersTheVersionItRefused) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  ASSERT_TRUE(s->Send("", first.nonce(), "bad"));
  ASSERT_TRUE(
      WaitFor([&] { return Streams()[0].nacked_version == first.version_info(); }));
  EXPECT_NE(server_->policy_server()->StreamsJson().find(
                absl::StrCat("\"nacked_version\":\"", first.version_info(), "\"")),
            std::string::npos)
      << server_->policy_server()->StreamsJson();
}

TEST_F(PolicyServerTest, NodeUpdatesAreShownPerStreamBoundedAndAreNoAnswer) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  PolicyRequest update;  // no nonce: the agent's node update, not an ACK
  tandem::policy::v1::Node& node = *update.mutable_node_info();
  node.set_id("cart-7d9f");
  node.set_user_agent_name("tandem-proxy");
  node.set_user_agent_version(std::string(300, 'v'));
  (*node.mutable_metadata())["AGENT_VERSION"] = "0.1.0";
  (*node.mutable_metadata())["CERT_SERIAL"] = "1f3a";
  (*node.mutable_metadata())["CERT_NOT_AFTER"] = "2027-01-15T08:00:00Z";
  ASSERT_TRUE(s->stream->Write(update));
  ASSERT_TRUE(WaitFor([&] { return Streams()[0].cert_serial == "1f3a"; }));
  PolicyServer::StreamInfo info = Streams()[0];
  EXPECT_EQ(info.node, "cart-7d9f");
  EXPECT_EQ(info.proxy_name, "tandem-proxy");
  EXPECT_EQ(info.proxy_version, std::string(PolicyServer::kMaxNodeFieldBytes, 'v'));
  EXPECT_EQ(info.agent_version, "0.1.0");
  EXPECT_EQ(info.cert_not_after, absl::FromUnixSeconds(1800000000));
  EXPECT_EQ(info.acked_version, "");
  EXPECT_TRUE(MetricsContain("tandem_ca_policy_acks_total 0"));
  std::string json = server_->policy_server()->StreamsJson();
  EXPECT_NE(json.find("\"cert_not_after\":\"2027-01-15T08:00:00Z\""), std::string::npos)
      << json;

  // A later update replaces the whole node: an unreadable expiry is unknown, a proxy
  // that left has no name, a multi-byte character is never cut in half.
  node.set_user_agent_name("");
  node.set_id(std::string(255, 'x') + "\xc3\xa9");
  (*node.mutable_metadata())["CERT_NOT_AFTER"] = "tomorrow";
  ASSERT_TRUE(s->stream->Write(update));
  ASSERT_TRUE(
      WaitFor([&] { return Streams()[0].cert_not_after == absl::InfinitePast(); }));
  info = Streams()[0];
  EXPECT_EQ(info.proxy_name, "");
  EXPECT_EQ(info.node, std::string(255, 'x'));
  json = server_->policy_server()->StreamsJson();
  EXPECT_NE(json.find("\"cert_not_after\":\"\""), std::string::npos) << json;
}

TEST_F(PolicyServerTest, PushesAFileChangeAndKeepsTheLastGoodVersionOnABadFile) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  ASSERT_TRUE(s->Send(first.version_info(), first.nonce()));

  WritePolicy("defaults:\n  inboundMode: LOOSE\n");
  ASSERT_TRUE(WaitFor([&] {
    return MetricsContain(R"(tandem_ca_policy_loads_total{result="refused"} 1)");
  }));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_policy_loads_total{result="accepted"} 1)"));

  // The next response is the next good file: the bad one was never pushed.
  WritePolicy(absl::StrCat(kPolicy, "  - namespace: shop\n    serviceAccount: cart\n",
                           "    inboundMode: PERMISSIVE\n"));
  PolicyResponse second = s->Next();
  ASSERT_FALSE(second.version_info().empty());
  EXPECT_NE(second.version_info(), first.version_info());
  EXPECT_NE(second.nonce(), first.nonce());
  EXPECT_EQ(second.policy().default_inbound_mode(), tandem::config::PERMISSIVE);
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_policy_loads_total{result="accepted"} 2)"));
}

TEST_F(PolicyServerTest, ChangesThatDoNotConcernAWorkloadAreNotPushedToIt) {
  auto s = Open({"shop", "cart"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  WritePolicy(
      absl::StrCat(kPolicy, "  - namespace: other\n    inboundMode: PERMISSIVE\n"));
  ASSERT_TRUE(WaitFor([&] {
    return MetricsContain(R"(tandem_ca_policy_loads_total{result="accepted"} 2)");
  }));
  // A change that does concern it comes next, not a copy of the first version.
  ASSERT_TRUE(
      revocations_
          ->RevokeSpiffeId("spiffe://cluster.local/ns/x/sa/y", "", false, absl::Now())
          .ok());
  PolicyResponse second = s->Next();
  ASSERT_EQ(second.policy().revocations_size(), 1);
  // Counted after Write() returns, which may be after the client has read it.
  EXPECT_TRUE(
      WaitFor([&] { return MetricsContain("tandem_ca_policy_responses_total 2"); }));
}

TEST_F(PolicyServerTest, SamePolicyHasTheSameVersionAfterARestart) {
  std::string version;
  {
    auto s = Open({"shop", "cart"});
    version = s->Next().version_info();
    ASSERT_FALSE(version.empty());
  }
  StartServer();
  auto s = Open({"shop", "cart"});
  EXPECT_EQ(s->Next().version_info(), version);
}

TEST_F(PolicyServerTest, RevocationIsPushedAtOnceNotAtTheNextPoll) {
  poll_interval_ = absl::Hours(1);
  StartServer();
  auto s = Open({"shop", "web"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  ASSERT_TRUE(revocations_
                  ->RevokeSerial("0BADC0DE", absl::Now() + absl::Hours(1), "test", false,
                                 absl::Now())
                  .ok());
  // The store's change listener wakes the poll thread: no hour-long wait.
  PolicyResponse second = s->Next();
  ASSERT_EQ(second.policy().revocations_size(), 1);
  EXPECT_EQ(second.policy().revocations(0).serial_hex(), "badc0de");
}

TEST_F(PolicyServerTest, RevocationIsPushedAndRefusesIssuanceToTheRevokedIdentity) {
  auto s = Open({"shop", "web"});
  PolicyResponse first = s->Next();
  ASSERT_FALSE(first.version_info().empty());
  EXPECT_EQ(first.policy().revocations_size(), 0);

  const std::string revoked = "spiffe://cluster.local/ns/shop/sa/cart";
  ASSERT_TRUE(
      revocations_->RevokeSpiffeId(revoked, "compromised", true, absl::Now()).ok());
  PolicyResponse second = s->Next();
  ASSERT_EQ(second.policy().revocations_size(), 1);
  EXPECT_EQ(second.policy().revocations(0).spiffe_id(), revoked);
  EXPECT_TRUE(second.policy().revocations(0).close_open_connections());
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_revocations{target="spiffe_id"} 1)"));

  auto ca = istio::v1::auth::IstioCertificateService::NewStub(Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer " + Token({"shop", "cart"}));
  istio::v1::auth::IstioCertificateRequest request;
  request.set_csr(NewCredentialRequest(revoked)->csr_pem);
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status = ca->CreateCertificate(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(), revoked + " is revoked");
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="revoked"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_requests_total{result="revoked"} 1)"));

  // The revoked workload cannot open a policy stream either.
  auto refused = Open({"shop", "cart"});
  EXPECT_EQ(refused->Next().version_info(), "");
  EXPECT_EQ(refused->stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(
      MetricsContain(R"(tandem_ca_policy_stream_refusals_total{reason="revoked"} 1)"));
}

TEST_F(PolicyServerTest, PushesWhenARevocationExpires) {
  auto s = Open({"shop", "cart"});
  ASSERT_FALSE(s->Next().version_info().empty());
  // Two seconds: the entry keeps whole seconds, so it is still live when pushed.
  ASSERT_TRUE(
      revocations_
          ->RevokeSerial("ab", absl::Now() + absl::Seconds(2), "", false, absl::Now())
          .ok());
  PolicyResponse revoked = s->Next();
  ASSERT_EQ(revoked.policy().revocations_size(), 1);
  PolicyResponse expired = s->Next();
  ASSERT_FALSE(expired.version_info().empty());
  EXPECT_EQ(expired.policy().revocations_size(), 0);
  EXPECT_TRUE(revocations_->Live(absl::Now()).empty());
}

TEST_F(PolicyServerTest, RefusesRenewalWithARevokedCertificate) {
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  auto ca = istio::v1::auth::IstioCertificateService::NewStub(Channel());
  istio::v1::auth::IstioCertificateResponse response;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + Token({"a", "b"}));
    istio::v1::auth::IstioCertificateRequest request;
    request.set_csr(pending.csr_pem);
    ASSERT_TRUE(ca->CreateCertificate(&ctx, request, &response).ok());
  }
  IssuedCredential issued = *AcceptCredential(
      pending.private_key_pem,
      {response.cert_chain().begin(), response.cert_chain().end()}, "", "", absl::Now());
  ASSERT_TRUE(
      revocations_->RevokeSerial(issued.serial, issued.not_after, "", false, absl::Now())
          .ok());
  auto mtls = istio::v1::auth::IstioCertificateService::NewStub(
      Channel(issued.secret.private_key, issued.secret.cert_chain));
  grpc::ClientContext ctx;
  istio::v1::auth::IstioCertificateRequest request;
  request.set_csr(NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b")->csr_pem);
  grpc::Status status = mtls->CreateCertificate(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(status.error_message().find("is revoked"), std::string::npos);
}

TEST_F(PolicyServerTest, RefusesAStreamWithoutCredentials) {
  auto s = Open({"", ""});
  EXPECT_EQ(s->Next().version_info(), "");
  EXPECT_EQ(s->stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(MetricsContain(
      R"(tandem_ca_policy_stream_refusals_total{reason="missing_credentials"} 1)"));
}

// Kubernetes mode: a stream's token is checked by a TokenReview, which waits on the
// API server. Eight streams whose reviews the API server holds must leave gRPC's
// threads free: a stream authenticated by its client certificate (no review) gets its
// policy meanwhile, and the eight get theirs once the API server answers.
TEST_F(PolicyServerTest, ServesOtherStreamsWhileTokenReviewsWaitOnTheApiServer) {
  absl::Notification answer;
  std::unique_ptr<FakeHttpsServer> api =
      *FakeHttpsServer::Create([&answer](const FakeHttpsRequest&) -> FakeHttpsReply {
        // Bounded, so a broken build fails the test instead of hanging it.
        answer.WaitForNotificationWithTimeout(absl::Seconds(30));
        return {201, R"({"status":{"authenticated":true,"audiences":["istio-ca"],
                  "user":{"username":"system:serviceaccount:shop:cart"}}})"};
      });
  TokenReviewAuthenticator::Options review;
  review.api_server = absl::StrCat("127.0.0.1:", api->port());
  review.ca_pem = api->ca_pem();
  review.credential_token = "ca-token";
  review.timeout = absl::Seconds(60);
  StartServer(&review);
  // The certificate is issued by the CA's core directly: a CreateCertificate would
  // need a review too.
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  absl::StatusOr<std::vector<std::string>> chain =
      server_->core().Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  ASSERT_TRUE(chain.ok()) << chain.status();
  IssuedCredential issued =
      *AcceptCredential(pending.private_key_pem, *chain, "", "", absl::Now());

  std::vector<std::unique_ptr<PolicyStream>> waiting;
  for (int i = 0; i < 8; ++i) waiting.push_back(Open({"shop", "cart"}));
  ASSERT_TRUE(WaitFor([&] { return api->requests() >= 1; }))
      << "no review reached the API server";
  auto by_certificate =
      Open({"", ""}, Channel(issued.secret.private_key, issued.secret.cert_chain));
  PolicyResponse first = by_certificate->Next();
  EXPECT_FALSE(first.version_info().empty())
      << "a stream that needs no review waited for the others' reviews: "
      << by_certificate->stream->Finish().error_message();
  EXPECT_FALSE(answer.HasBeenNotified());

  answer.Notify();
  for (std::unique_ptr<PolicyStream>& s : waiting) {
    EXPECT_FALSE(s->Next().version_info().empty()) << s->stream->Finish().error_message();
  }
  EXPECT_EQ(api->requests(), 8);
}

TEST_F(PolicyServerTest, StopEndsOpenStreams) {
  auto s = Open({"shop", "cart"});
  ASSERT_FALSE(s->Next().version_info().empty());
  server_->Stop();
  EXPECT_EQ(s->Next().version_info(), "") << "the stream ends instead of hanging";
  grpc::Status status = s->stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "tandem-ca is stopping");
}

}  // namespace
}  // namespace tandem::controlplane
