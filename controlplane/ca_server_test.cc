// The real gRPC+TLS path of tandem-ca, in-process. gRPC code: no <openssl/...> here.
#include "controlplane/ca_server.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "controlplane/jwt.h"
#include "gtest/gtest.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::controlplane {
namespace {

class CaServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-ca-server-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    signing_key_ = NewKey();
    CaServerOptions options;
    options.core.root_dir = dir_ + "/root";
    options.core.max_ttl = absl::Hours(4);
    options.listen_address = "127.0.0.1:0";
    options.token_public_key_pem = *PublicKeyPemOf(signing_key_);
    server_ = *CaServer::Create(options);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  // A fresh P-256 key as PEM (the CSR helper makes one; the CSR is not needed).
  static std::string NewKey() {
    return NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
  }
  std::unique_ptr<istio::v1::auth::IstioCertificateService::Stub> Stub(
      const std::string& client_key = "", const std::string& client_chain = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = server_->core().trust_bundle_pem();
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
  istio::v1::auth::IstioCertificateResponse response;
  EXPECT_EQ(Call(*stub, "", pending.csr_pem, 0, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED)
      << "no token and no client certificate";
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

}  // namespace
}  // namespace tandem::controlplane
