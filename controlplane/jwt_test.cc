#include "controlplane/jwt.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "common/pki/private_key.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = *pki::PrivateKey::GenerateP256()->ToPem();
    verifier_ = *JwtVerifier::Create({*PublicKeyPemOf(key_), "istio-ca", "tandem"});
  }
  std::string Mint(absl::Time now, absl::Duration ttl = absl::Hours(1),
                   const std::string& aud = "istio-ca") {
    return *MintServiceAccountToken(key_, {"shop", "cart"}, aud, "tandem", now, ttl);
  }
  void ExpectRefused(const std::string& token, const std::string& reason) {
    absl::StatusOr<ServiceAccount> sa = verifier_->Verify(token, absl::Now());
    ASSERT_FALSE(sa.ok());
    EXPECT_EQ(sa.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_NE(std::string(sa.status().message()).find(reason), std::string::npos)
        << sa.status();
  }
  std::string key_;
  std::unique_ptr<JwtVerifier> verifier_;
};

TEST_F(JwtTest, AcceptsValidTokenAndReadsServiceAccount) {
  absl::StatusOr<ServiceAccount> sa = verifier_->Verify(Mint(absl::Now()), absl::Now());
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->ns, "shop");
  EXPECT_EQ(sa->name, "cart");
}

TEST_F(JwtTest, RefusesExpiredToken) {
  ExpectRefused(Mint(absl::Now() - absl::Hours(2)), "expired");
}

TEST_F(JwtTest, RefusesTokenNotYetValid) {
  ExpectRefused(Mint(absl::Now() + absl::Hours(1)), "not valid yet");
}

TEST_F(JwtTest, RefusesWrongAudience) {
  ExpectRefused(Mint(absl::Now(), absl::Hours(1), "kubernetes"), "audience");
}

TEST_F(JwtTest, RefusesTokenSignedByAnotherKey) {
  std::string other = *pki::PrivateKey::GenerateP256()->ToPem();
  ExpectRefused(*MintServiceAccountToken(other, {"a", "b"}, "istio-ca", "tandem",
                                         absl::Now(), absl::Hours(1)),
                "signature");
}

TEST_F(JwtTest, RefusesTamperedPayload) {
  std::string token = Mint(absl::Now());
  size_t dot = token.find('.');
  std::string forged;
  absl::WebSafeBase64Escape(
      R"({"aud":"istio-ca","exp":9999999999,"sub":"system:serviceaccount:kube-system:admin"})",
      &forged);
  ExpectRefused(token.substr(0, dot + 1) + forged + token.substr(token.rfind('.')),
                "signature");
}

TEST_F(JwtTest, RefusesMalformedTokens) {
  ExpectRefused("", "empty");
  ExpectRefused("a.b", "compact");
  ExpectRefused("!!.??.**", "base64url");
  ExpectRefused(std::string(20000, 'a'), "16 KiB");
  std::string none_header;
  absl::WebSafeBase64Escape(R"({"alg":"none"})", &none_header);
  ExpectRefused(none_header + ".e30.", "ES256");
}

TEST(JwtVerifierTest, RefusesBadPublicKey) {
  EXPECT_FALSE(JwtVerifier::Create({"not a key", "aud", ""}).ok());
}

}  // namespace
}  // namespace tandem::controlplane
