// The real gRPC+TLS path of tandem-ca, in-process. gRPC code: no <openssl/...> here.
#include "controlplane/server/ca_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/auth/jwt.h"
#include "gtest/gtest.h"
#include "istio/ca.grpc.pb.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/temp_dir.h"
#include "tests/support/fake_https_server.h"
#include "tests/support/test_csr.h"

namespace tandem::controlplane {
namespace {

class CaServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-ca-server-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    signing_key_ = NewKey();
    CaServerOptions options = Options();
    options.token_public_key_pem = *PublicKeyPemOf(signing_key_);
    StartServer(options);
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  CaServerOptions Options() {
    CaServerOptions options;
    options.core.root_dir = dir_ + "/root";
    options.core.max_ttl = absl::Hours(4);
    options.listen_address = "127.0.0.1:0";
    return options;
  }
  void StartServer(const CaServerOptions& options) {
    if (server_) server_->Stop();
    absl::StatusOr<std::unique_ptr<CaServer>> server = CaServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->Start().ok());
  }
  bool MetricsContain(const std::string& line) {
    return server_->RenderMetrics().find(line + "\n") != std::string::npos;
  }
  // A fresh P-256 key as PEM (the CSR helper makes one; the CSR is not needed).
  static std::string NewKey() {
    return NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
  }
  std::unique_ptr<istio::v1::auth::IstioCertificateService::Stub> Stub(
      const std::string& client_key = "", const std::string& client_chain = "") {
    return StubTrusting(server_->core().trust_bundle_pem(), client_key, client_chain);
  }
  // A stub on a channel of its own whose TLS trusts `roots` only.
  std::unique_ptr<istio::v1::auth::IstioCertificateService::Stub> StubTrusting(
      const std::string& roots, const std::string& client_key = "",
      const std::string& client_chain = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = roots;
    ssl.pem_private_key = client_key;
    ssl.pem_cert_chain = client_chain;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("tandem-ca");
    return istio::v1::auth::IstioCertificateService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::SslCredentials(ssl), args));
  }
  grpc::Status Call(istio::v1::auth::IstioCertificateService::Stub& stub,
                    const std::string& token, const std::string& csr, int64_t ttl,
                    istio::v1::auth::IstioCertificateResponse* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    istio::v1::auth::IstioCertificateRequest request;
    request.set_csr(csr);
    request.set_validity_duration(ttl);
    return stub.CreateCertificate(&ctx, request, response);
  }
  std::string Token(const ServiceAccount& sa, const std::string& aud = "istio-ca",
                    absl::Duration ttl = absl::Hours(1)) {
    return *MintServiceAccountToken(signing_key_, sa, aud, "tandem", absl::Now(), ttl);
  }
  std::vector<std::string> Chain(const istio::v1::auth::IstioCertificateResponse& r) {
    return {r.cert_chain().begin(), r.cert_chain().end()};
  }

  std::string dir_;
  std::string signing_key_;
  std::unique_ptr<CaServer> server_;
};

TEST_F(CaServerTest, IssuesCallersIdentityOverGrpcTls) {
  auto stub = Stub();
  PendingCredential pending =
      *NewCredentialRequest("spiffe://cluster.local/ns/kube-system/sa/admin");
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status =
      Call(*stub, Token({"shop", "cart"}), pending.csr_pem, 999999, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(response.cert_chain_size(), 2);
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(pending.private_key_pem, Chain(response), "", "", absl::Now());
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->spiffe_id, "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_LE(issued->not_after - absl::Now(), absl::Hours(4));
  EXPECT_NE(server_->RenderMetrics().find("tandem_ca_certificates_issued_total 1"),
            std::string::npos);
}

// Istio's agent sends an RSA-2048 CSR unless told otherwise; the key and CSR here are
// made by the openssl command-line tool, and the agent's acceptance check takes the
// RSA leaf.
TEST_F(CaServerTest, IssuesForAnOpensslRsa2048CsrAsIstiosAgentSendsIt) {
  testing::TempDir dir("tandem-ca-rsa-csr");
  testing::OpensslCli openssl(dir.path());
  absl::StatusOr<std::string> key = openssl.GenerateKey("agent", "RSA:2048");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> csr =
      openssl.MakeCsr("agent", "spiffe://cluster.local/ns/shop/sa/cart");
  ASSERT_TRUE(csr.ok()) << csr.status();
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status = Call(*Stub(), Token({"shop", "cart"}), *csr, 0, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(*key, Chain(response), "", "", absl::Now());
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->spiffe_id, "spiffe://cluster.local/ns/shop/sa/cart");
}

TEST_F(CaServerTest, RefusesBadTokensAsUnauthenticated) {
  auto stub = Stub();
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  std::string other_key = NewKey();
  for (const std::string& token :
       {std::string("garbage"), Token({"a", "b"}, "wrong-audience"),
        *MintServiceAccountToken(signing_key_, {"a", "b"}, "istio-ca", "tandem",
                                 absl::Now() - absl::Hours(3), absl::Hours(1)),
        *MintServiceAccountToken(other_key, {"a", "b"}, "istio-ca", "tandem", absl::Now(),
                                 absl::Hours(1))}) {
    istio::v1::auth::IstioCertificateResponse response;
    grpc::Status status = Call(*stub, token, pending.csr_pem, 0, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
  }
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="malformed_token"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="wrong_audience"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="expired"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="bad_signature"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_requests_total{result="unauthenticated"} 4)"));
}

TEST_F(CaServerTest, RefusesMissingOrNonBearerAuthorization) {
  auto stub = Stub();
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status = Call(*stub, "", pending.csr_pem, 0, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << "no token and no client certificate";
  EXPECT_TRUE(
      MetricsContain(R"(tandem_ca_refusals_total{reason="missing_credentials"} 1)"));
  for (const char* header : {"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer "}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("authorization", header);
    istio::v1::auth::IstioCertificateRequest request;
    request.set_csr(pending.csr_pem);
    EXPECT_EQ(stub->CreateCertificate(&ctx, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << header;
  }
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="malformed_header"} 2)"));
  EXPECT_EQ(response.cert_chain_size(), 0);
}

TEST_F(CaServerTest, ReturnsLeafThenRootWithDefaultTtlForZeroValidity) {
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  istio::v1::auth::IstioCertificateResponse response;
  ASSERT_TRUE(Call(*Stub(), Token({"a", "b"}), pending.csr_pem, 0, &response).ok());
  ASSERT_EQ(response.cert_chain_size(), 2);
  // Istio agents (and ours) take the last element as the root.
  EXPECT_EQ(response.cert_chain(1), server_->core().trust_bundle_pem());
  IssuedCredential issued =
      *AcceptCredential(pending.private_key_pem, Chain(response), "", "", absl::Now());
  EXPECT_LE(issued.not_after - absl::Now(), absl::Hours(1));  // default TTL
  EXPECT_GT(issued.not_after - absl::Now(), absl::Minutes(59));
}

TEST_F(CaServerTest, KeepsIstioWireContract) {
  using istio::v1::auth::IstioCertificateRequest;
  using istio::v1::auth::IstioCertificateResponse;
  EXPECT_EQ(std::string(istio::v1::auth::IstioCertificateService::service_full_name()),
            "istio.v1.auth.IstioCertificateService");
  const auto* request = IstioCertificateRequest::descriptor();
  EXPECT_EQ(request->FindFieldByName("csr")->number(), 1);
  EXPECT_EQ(request->FindFieldByName("validity_duration")->number(), 3);
  EXPECT_EQ(request->FindFieldByName("metadata")->number(), 4);
  EXPECT_EQ(
      IstioCertificateResponse::descriptor()->FindFieldByName("cert_chain")->number(), 1);
  // A raw call on the method path Istio's clients use.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = server_->core().trust_bundle_pem();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("tandem-ca.tandem-system.svc");
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                           grpc::SslCredentials(ssl), args);
  grpc::GenericStub generic(channel);
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  IstioCertificateRequest req;
  req.set_csr(pending.csr_pem);
  std::string wire;
  ASSERT_TRUE(req.SerializeToString(&wire));
  grpc::Slice slice(wire);
  grpc::ByteBuffer send(&slice, 1), receive;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer " + Token({"a", "b"}));
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/istio.v1.auth.IstioCertificateService/CreateCertificate",
                    grpc::StubOptions(), &send, &receive, [&](grpc::Status s) {
                      absl::MutexLock lock(&mu);
                      status = s;
                      done = true;
                    });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(receive.Dump(&slices).ok());
  std::string reply;
  for (const grpc::Slice& s : slices) reply.append(s.begin(), s.end());
  IstioCertificateResponse response;
  ASSERT_TRUE(response.ParseFromString(reply));
  EXPECT_EQ(response.cert_chain_size(), 2);
}

TEST_F(CaServerTest, RefusesWeakRsaKeyCsrAsInvalidArgument) {
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status =
      Call(*Stub(), Token({"a", "b"}),
           MakeRsaCsrPem("spiffe://cluster.local/ns/a/sa/b", 1024), 0, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("RSA-1024 is too weak"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_refusals_total{reason="bad_csr"} 1)"));
  EXPECT_TRUE(MetricsContain(R"(tandem_ca_requests_total{result="bad_csr"} 1)"));
}

TEST_F(CaServerTest, AuthenticatesByTokenReviewInKubernetesMode) {
  // The fake API server knows one token: "pod-token" for shop/cart.
  std::unique_ptr<FakeHttpsServer> api =
      *FakeHttpsServer::Create([](const FakeHttpsRequest& request) -> FakeHttpsReply {
        if (request.authorization != "Bearer ca-token") return {401, "{}"};
        if (request.body.find(R"("token":"api-down")") != std::string::npos) {
          return {503, "{}"};
        }
        if (request.body.find(R"("token":"pod-token")") == std::string::npos) {
          return {201, R"({"status":{"authenticated":false,"error":"invalid token"}})"};
        }
        return {201, R"({"status":{"authenticated":true,"audiences":["istio-ca"],
                  "user":{"username":"system:serviceaccount:shop:cart"}}})"};
      });
  CaServerOptions options = Options();
  options.token_review.api_server = absl::StrCat("127.0.0.1:", api->port());
  options.token_review.ca_pem = api->ca_pem();
  options.token_review.credential_token = "ca-token";
  StartServer(options);
  auto stub = Stub();
  PendingCredential pending =
      *NewCredentialRequest("spiffe://cluster.local/ns/kube-system/sa/admin");
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status = Call(*stub, "pod-token", pending.csr_pem, 0, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(
      AcceptCredential(pending.private_key_pem, Chain(response), "", "", absl::Now())
          ->spiffe_id,
      "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_EQ(Call(*stub, "stolen-token", pending.csr_pem, 0, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(*stub, "api-down", pending.csr_pem, 0, &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(
      MetricsContain(R"(tandem_ca_refusals_total{reason="token_review_denied"} 1)"));
  EXPECT_TRUE(
      MetricsContain(R"(tandem_ca_refusals_total{reason="token_review_unavailable"} 1)"));
  EXPECT_EQ(api->requests(), 3);
}

TEST_F(CaServerTest, RefusesTwoTokenAuthorities) {
  CaServerOptions options = Options();
  options.token_public_key_pem = *PublicKeyPemOf(signing_key_);
  options.token_review.api_server = "127.0.0.1:6443";
  EXPECT_EQ(CaServer::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CaServerTest, RefusesGarbageCsrAsInvalidArgument) {
  auto stub = Stub();
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status = Call(*stub, Token({"a", "b"}),
                             "-----BEGIN CERTIFICATE REQUEST-----\n"
                             "AAAA\n-----END CERTIFICATE REQUEST-----\n",
                             0, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CaServerTest, RenewsWithClientCertificateAndNoToken) {
  PendingCredential first = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  istio::v1::auth::IstioCertificateResponse response;
  ASSERT_TRUE(Call(*Stub(), Token({"a", "b"}), first.csr_pem, 0, &response).ok());
  IssuedCredential issued =
      *AcceptCredential(first.private_key_pem, Chain(response), "", "", absl::Now());
  auto mtls_stub = Stub(issued.secret.private_key, issued.secret.cert_chain);
  PendingCredential next = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  istio::v1::auth::IstioCertificateResponse renewed;
  grpc::Status status = Call(*mtls_stub, "", next.csr_pem, 0, &renewed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(AcceptCredential(next.private_key_pem, Chain(renewed), "", "", absl::Now())
                ->spiffe_id,
            "spiffe://cluster.local/ns/a/sa/b");
}

// Root rotation reaches the gRPC port itself: after a reload brings a new signing root,
// the port serves a certificate from it (a client trusting only the new root connects),
// while a connection opened before keeps working on the session it has.
TEST_F(CaServerTest, ServesFromTheNewRootAfterAReloadAndKeepsOpenConnections) {
  CaServerOptions options = Options();
  options.token_public_key_pem = *PublicKeyPemOf(signing_key_);
  options.root_reload_interval = absl::Milliseconds(50);
  StartServer(options);
  const std::string old_root = server_->core().trust_bundle_pem();
  auto open_on_old = StubTrusting(old_root);
  istio::v1::auth::IstioCertificateResponse response;
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  ASSERT_TRUE(Call(*open_on_old, Token({"a", "b"}), pending.csr_pem, 0, &response).ok());
  const std::string first_serial = server_->serving_serial();

  // The operator's next root, made by openssl, replaces the files.
  testing::OpensslCli openssl(dir_);
  ASSERT_TRUE(openssl.GenerateKey("next", "EC:P-256").ok());
  absl::StatusOr<std::string> next_root = openssl.MakeRoot("next");
  ASSERT_TRUE(next_root.ok()) << next_root.status();
  for (auto [from, to] :
       {std::pair{"next.key", "ca-key.pem"}, std::pair{"next.crt", "ca-cert.pem"}}) {
    const std::string staged = options.core.root_dir + "/." + to;
    std::filesystem::copy_file(openssl.PathOf(from), staged);
    std::filesystem::permissions(
        staged, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::rename(staged, options.core.root_dir + "/" + to);
  }
  for (absl::Time until = absl::Now() + absl::Seconds(20);
       server_->serving_serial() == first_serial && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(server_->serving_serial(), first_serial);
  EXPECT_EQ(server_->core().trust_bundle_pem(), *next_root);

  // New handshakes get the new certificate at gRPC's next re-read of it (a second).
  grpc::Status on_next;
  for (absl::Time until = absl::Now() + absl::Seconds(20); absl::Now() < until;) {
    on_next =
        Call(*StubTrusting(*next_root), Token({"a", "b"}), pending.csr_pem, 0, &response);
    if (on_next.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(on_next.ok()) << on_next.error_message();
  grpc::Status on_open =
      Call(*open_on_old, Token({"a", "b"}), pending.csr_pem, 0, &response);
  EXPECT_TRUE(on_open.ok()) << on_open.error_message();
  grpc::Status new_on_old =
      Call(*StubTrusting(old_root), Token({"a", "b"}), pending.csr_pem, 0, &response);
  EXPECT_EQ(new_on_old.error_code(), grpc::StatusCode::UNAVAILABLE)
      << "a new connection trusting only the old root must not verify the new "
         "certificate";
  EXPECT_TRUE(
      MetricsContain("tandem_ca_serving_certificate_renewals_total{result=\"ok\"} 1"));
  EXPECT_TRUE(MetricsContain("tandem_ca_root_reloads_total{result=\"accepted\"} 1"));
}

}  // namespace
}  // namespace tandem::controlplane
