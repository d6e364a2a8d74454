#include "controlplane/auth/token_review_authenticator.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "controlplane/auth/refusal_reason.h"
#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"
#include "tests/support/fake_https_server.h"

namespace tandem::controlplane {
namespace {

constexpr char kAuthenticated[] = R"({"apiVersion":"authentication.k8s.io/v1",
  "kind":"TokenReview","status":{"authenticated":true,
  "user":{"username":"system:serviceaccount:shop:cart","uid":"1",
  "groups":["system:serviceaccounts"]},"audiences":["istio-ca"]}})";

// Answers like the API server: "good-token" is shop/cart, anything else is refused.
class TokenReviewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = *FakeHttpsServer::Create([this](const FakeHttpsRequest& request) {
      absl::MutexLock lock(&mu_);
      last_ = request;
      return reply_;
    });
    SetReply({201, kAuthenticated});
  }
  void SetReply(FakeHttpsReply reply) {
    absl::MutexLock lock(&mu_);
    reply_ = std::move(reply);
  }
  FakeHttpsRequest last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }
  TokenReviewAuthenticator::Options Options() {
    TokenReviewAuthenticator::Options options;
    options.api_server = absl::StrCat("127.0.0.1:", server_->port());
    options.ca_pem = server_->ca_pem();
    options.credential_token = "ca-own-token";
    options.timeout = absl::Seconds(5);
    return options;
  }
  std::unique_ptr<TokenReviewAuthenticator> Authenticator() {
    return *TokenReviewAuthenticator::Create(Options());
  }
  void ExpectRefused(const absl::StatusOr<ServiceAccount>& sa, absl::StatusCode code,
                     const std::string& reason) {
    ASSERT_FALSE(sa.ok());
    EXPECT_EQ(sa.status().code(), code) << sa.status();
    EXPECT_EQ(RefusalReasonOf(sa.status(), "none"), reason) << sa.status();
  }

  absl::Mutex mu_;
  FakeHttpsReply reply_ ABSL_GUARDED_BY(mu_);
  FakeHttpsRequest last_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<FakeHttpsServer> server_;
};

TEST_F(TokenReviewTest, AcceptsTokenTheApiServerAuthenticates) {
  absl::StatusOr<ServiceAccount> sa =
      Authenticator()->Authenticate("good-token", absl::Now());
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->ns, "shop");
  EXPECT_EQ(sa->name, "cart");
  FakeHttpsRequest request = last();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/apis/authentication.k8s.io/v1/tokenreviews");
  EXPECT_EQ(request.authorization, "Bearer ca-own-token");
  EXPECT_TRUE(absl::StrContains(request.body, R"("token":"good-token")")) << request.body;
  EXPECT_TRUE(absl::StrContains(request.body, R"("audiences":["istio-ca"])"))
      << request.body;
  EXPECT_TRUE(absl::StrContains(request.body, R"("kind":"TokenReview")"));
}

TEST_F(TokenReviewTest, ReadsChunkedAnswers) {
  SetReply({201, kAuthenticated, /*chunked=*/true});
  absl::StatusOr<ServiceAccount> sa =
      Authenticator()->Authenticate("good-token", absl::Now());
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->name, "cart");
}

TEST_F(TokenReviewTest, EscapesHostileTokenInTheReviewBody) {
  ASSERT_TRUE(Authenticator()->Authenticate("a\"}, \"x\":\"y", absl::Now()).ok());
  EXPECT_TRUE(absl::StrContains(last().body, R"(a\"}, \"x\":\"y)")) << last().body;
}

TEST_F(TokenReviewTest, RefusesTokenTheApiServerDoesNotAuthenticate) {
  SetReply({201, R"({"status":{"authenticated":false,"error":"token expired"}})"});
  absl::StatusOr<ServiceAccount> sa = Authenticator()->Authenticate("stale", absl::Now());
  ExpectRefused(sa, absl::StatusCode::kUnauthenticated, "token_review_denied");
  EXPECT_TRUE(absl::StrContains(sa.status().message(), "token expired"));
  SetReply({201, R"({"status":{}})"});
  ExpectRefused(Authenticator()->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnauthenticated, "token_review_denied");
}

TEST_F(TokenReviewTest, RefusesAnswerForAnotherAudience) {
  SetReply({201, R"({"status":{"authenticated":true,"audiences":["kubernetes"],
              "user":{"username":"system:serviceaccount:shop:cart"}}})"});
  ExpectRefused(Authenticator()->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnauthenticated, "wrong_audience");
}

TEST_F(TokenReviewTest, RefusesUsersThatAreNotServiceAccounts) {
  SetReply({201, R"({"status":{"authenticated":true,"audiences":["istio-ca"],
              "user":{"username":"alice@example.com"}}})"});
  ExpectRefused(Authenticator()->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnauthenticated, "no_identity");
}

TEST_F(TokenReviewTest, ReportsApiServerFailuresAsUnavailable) {
  SetReply({403, R"({"kind":"Status","reason":"Forbidden"})"});
  ExpectRefused(Authenticator()->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnavailable, "token_review_unavailable");
  SetReply({201, "not json"});
  ExpectRefused(Authenticator()->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnavailable, "token_review_unavailable");
}

TEST_F(TokenReviewTest, RefusesApiServerWithUntrustedCertificate) {
  TokenReviewAuthenticator::Options options = Options();
  std::unique_ptr<FakeHttpsServer> other =
      *FakeHttpsServer::Create([](const FakeHttpsRequest&) {
        return FakeHttpsReply{201, kAuthenticated};
      });
  options.ca_pem = other->ca_pem();  // a root that did not sign server_'s certificate
  absl::StatusOr<ServiceAccount> sa =
      (*TokenReviewAuthenticator::Create(options))->Authenticate("t", absl::Now());
  ExpectRefused(sa, absl::StatusCode::kUnavailable, "token_review_unavailable");
  EXPECT_EQ(server_->requests(), 0);
}

TEST_F(TokenReviewTest, RefusesApiServerWhoseCertificateNamesAnotherHost) {
  TokenReviewAuthenticator::Options options = Options();
  options.server_name = "evil.example.com";
  ExpectRefused(
      (*TokenReviewAuthenticator::Create(options))->Authenticate("t", absl::Now()),
      absl::StatusCode::kUnavailable, "token_review_unavailable");
  options.server_name = "kubernetes.default.svc";
  EXPECT_TRUE(
      (*TokenReviewAuthenticator::Create(options))->Authenticate("t", absl::Now()).ok());
}

TEST_F(TokenReviewTest, RereadsItsOwnTokenFileForEveryReview) {
  char tmpl[] = "/tmp/tandem-token-review-test-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/token";
  TokenReviewAuthenticator::Options options = Options();
  options.credential_token.clear();
  options.credential_token_path = path;
  std::unique_ptr<TokenReviewAuthenticator> authenticator =
      *TokenReviewAuthenticator::Create(options);
  for (const char* token : {"first", "rotated"}) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f, "%s\n", token);
    std::fclose(f);
    ASSERT_TRUE(authenticator->Authenticate("t", absl::Now()).ok());
    EXPECT_EQ(last().authorization, absl::StrCat("Bearer ", token));
  }
  std::filesystem::remove_all(dir);
  ExpectRefused(authenticator->Authenticate("t", absl::Now()),
                absl::StatusCode::kUnavailable, "token_review_unavailable");
}

TEST_F(TokenReviewTest, ReportsUnreachableApiServerAsUnavailable) {
  TokenReviewAuthenticator::Options options = Options();
  tandem::testing::ClosedPort nothing_listens;
  options.api_server = absl::StrCat("127.0.0.1:", nothing_listens.port());
  ExpectRefused(
      (*TokenReviewAuthenticator::Create(options))->Authenticate("t", absl::Now()),
      absl::StatusCode::kUnavailable, "token_review_unavailable");
}

TEST(TokenReviewOptionsTest, RefusesBadOptions) {
  TokenReviewAuthenticator::Options options;
  options.api_server = "127.0.0.1:6443";
  options.ca_pem = "not a certificate";
  options.credential_token = "x";
  EXPECT_EQ(TokenReviewAuthenticator::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.credential_token.clear();
  EXPECT_EQ(TokenReviewAuthenticator::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.credential_token = "x";
  options.api_server = "no-port";
  EXPECT_EQ(TokenReviewAuthenticator::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::controlplane
