// BoringSSL code (the test mints RS256 tokens and JWKS itself): no gRPC headers.
#include "controlplane/auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/pki/private_key.h"
#include "controlplane/auth/refusal_reason.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

std::string B64(absl::string_view in) {
  std::string out;
  absl::WebSafeBase64Escape(in, &out);
  return out;
}

std::string BignumB64(const BIGNUM* bn, size_t width = 0) {
  std::string raw(width ? width : BN_num_bytes(bn), '\0');
  BN_bn2bin_padded(reinterpret_cast<uint8_t*>(raw.data()), raw.size(), bn);
  return B64(raw);
}

std::string Claims(absl::Time now, const std::string& extra = "") {
  return absl::StrCat(R"({"aud":["kubernetes","istio-ca"],"iss":"tandem","exp":)",
                      absl::ToUnixSeconds(now + absl::Hours(1)),
                      R"(,"sub":"system:serviceaccount:shop:cart")", extra, "}");
}

// An RSA key that signs RS256 tokens, as the Kubernetes API server's default key does.
class RsaSigner {
 public:
  RsaSigner() {
    bssl::UniquePtr<RSA> rsa(RSA_new());
    bssl::UniquePtr<BIGNUM> e(BN_new());
    BN_set_word(e.get(), RSA_F4);
    EXPECT_TRUE(RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr));
    pkey_.reset(EVP_PKEY_new());
    EVP_PKEY_assign_RSA(pkey_.get(), rsa.release());
  }
  std::string Sign(const std::string& header, const std::string& claims) const {
    std::string input = absl::StrCat(B64(header), ".", B64(claims));
    bssl::ScopedEVP_MD_CTX ctx;
    size_t len = EVP_PKEY_size(pkey_.get());
    std::string sig(len, '\0');
    EXPECT_TRUE(
        EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey_.get()));
    EXPECT_TRUE(EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(sig.data()), &len,
                               reinterpret_cast<const uint8_t*>(input.data()),
                               input.size()));
    sig.resize(len);
    return absl::StrCat(input, ".", B64(sig));
  }
  std::string Jwk(const std::string& kid) const {
    const RSA* rsa = EVP_PKEY_get0_RSA(pkey_.get());
    return absl::StrCat(R"({"kty":"RSA","use":"sig","alg":"RS256","kid":")", kid,
                        R"(","n":")", BignumB64(RSA_get0_n(rsa)), R"(","e":")",
                        BignumB64(RSA_get0_e(rsa)), R"("})");
  }
  std::string PublicPem() const {
    bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PUBKEY(bio.get(), pkey_.get());
    const uint8_t* data;
    size_t len;
    BIO_mem_contents(bio.get(), &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
  }

 private:
  bssl::UniquePtr<EVP_PKEY> pkey_;
};

std::string EcJwk(const std::string& private_key_pem, const std::string& kid) {
  pki::PrivateKey key = *pki::PrivateKey::FromPem(private_key_pem);
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key.get());
  bssl::UniquePtr<BIGNUM> x(BN_new()), y(BN_new());
  EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
                                      x.get(), y.get(), nullptr);
  return absl::StrCat(R"({"kty":"EC","crv":"P-256","kid":")", kid, R"(","x":")",
                      BignumB64(x.get(), 32), R"(","y":")", BignumB64(y.get(), 32),
                      R"("})");
}

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = *pki::PrivateKey::GenerateP256()->ToPem();
    verifier_ = *JwtVerifier::Create({*PublicKeyPemOf(key_), "", "istio-ca", "tandem"});
  }
  std::string Mint(absl::Time now, absl::Duration ttl = absl::Hours(1),
                   const std::string& aud = "istio-ca") {
    return *MintServiceAccountToken(key_, {"shop", "cart"}, aud, "tandem", now, ttl);
  }
  void ExpectRefused(const std::string& token, const std::string& reason,
                     const JwtVerifier* verifier = nullptr) {
    absl::StatusOr<ServiceAccount> sa =
        (verifier ? verifier : verifier_.get())->Verify(token, absl::Now());
    ASSERT_FALSE(sa.ok());
    EXPECT_EQ(sa.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(RefusalReasonOf(sa.status(), "none"), reason) << sa.status();
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
  ExpectRefused(Mint(absl::Now() + absl::Hours(1)), "not_yet_valid");
}

TEST_F(JwtTest, RefusesWrongAudience) {
  ExpectRefused(Mint(absl::Now(), absl::Hours(1), "kubernetes"), "wrong_audience");
}

TEST_F(JwtTest, RefusesWrongIssuer) {
  ExpectRefused(*MintServiceAccountToken(key_, {"a", "b"}, "istio-ca", "someone-else",
                                         absl::Now(), absl::Hours(1)),
                "wrong_issuer");
}

TEST_F(JwtTest, RefusesTokenSignedByAnotherKey) {
  std::string other = *pki::PrivateKey::GenerateP256()->ToPem();
  ExpectRefused(*MintServiceAccountToken(other, {"a", "b"}, "istio-ca", "tandem",
                                         absl::Now(), absl::Hours(1)),
                "bad_signature");
}

TEST_F(JwtTest, RefusesTamperedPayload) {
  std::string token = Mint(absl::Now());
  size_t dot = token.find('.');
  std::string forged = B64(
      R"({"aud":"istio-ca","exp":9999999999,"sub":"system:serviceaccount:kube-system:admin"})");
  ExpectRefused(token.substr(0, dot + 1) + forged + token.substr(token.rfind('.')),
                "bad_signature");
}

TEST_F(JwtTest, RefusesMalformedTokens) {
  ExpectRefused("", "malformed_token");
  ExpectRefused("a.b", "malformed_token");
  ExpectRefused("!!.??.**", "malformed_token");
  ExpectRefused(std::string(20000, 'a'), "malformed_token");
  // Padding and the standard alphabet are not base64url.
  std::string token = Mint(absl::Now());
  ExpectRefused(token + "=", "malformed_token");
  ExpectRefused(B64(R"({"alg":"none"})") + ".e30.", "unsupported_algorithm");
  ExpectRefused(B64(R"({"alg":"HS256"})") + ".e30.AAAA", "unsupported_algorithm");
  ExpectRefused(B64(R"({"alg":"ES256","crit":["x"]})") + ".e30.AAAA",
                "unsupported_algorithm");
  ExpectRefused(B64("[1,2]") + ".e30.AAAA", "malformed_token");
  // Nested deeper than any token needs: refused before it is parsed.
  const std::string deep =
      B64(absl::StrCat(R"({"alg":"ES256","x":)", std::string(20, '['),
                       std::string(20, ']'), "}")) +
      ".e30.AAAA";
  ExpectRefused(deep, "malformed_token");
  EXPECT_NE(std::string(verifier_->Verify(deep, absl::Now()).status().message())
                .find("header is not a JSON object"),
            std::string::npos);
}

TEST_F(JwtTest, RefusesTokenIssuedInTheFuture) {
  RsaSigner rsa;
  std::unique_ptr<JwtVerifier> verifier =
      *JwtVerifier::Create({rsa.PublicPem(), "", "istio-ca", ""});
  absl::Time now = absl::Now();
  ExpectRefused(
      rsa.Sign(R"({"alg":"RS256"})",
               Claims(now, absl::StrCat(R"(,"iat":)", absl::ToUnixSeconds(now) + 3600))),
      "not_yet_valid", verifier.get());
  ExpectRefused(rsa.Sign(R"({"alg":"RS256"})", Claims(now, R"(,"iat":"yesterday")")),
                "malformed_token", verifier.get());
}

TEST_F(JwtTest, RefusesDisagreeingSubjectAndKubernetesClaims) {
  RsaSigner rsa;
  std::unique_ptr<JwtVerifier> verifier =
      *JwtVerifier::Create({rsa.PublicPem(), "", "istio-ca", ""});
  ExpectRefused(
      rsa.Sign(
          R"({"alg":"RS256"})",
          Claims(
              absl::Now(),
              R"(,"kubernetes.io":{"namespace":"kube-system","serviceaccount":{"name":"admin"}})")),
      "no_identity", verifier.get());
}

TEST_F(JwtTest, AcceptsRs256TokenWithPemKey) {
  RsaSigner rsa;
  std::unique_ptr<JwtVerifier> verifier =
      *JwtVerifier::Create({rsa.PublicPem(), "", "istio-ca", "tandem"});
  absl::StatusOr<ServiceAccount> sa = verifier->Verify(
      rsa.Sign(R"({"alg":"RS256","kid":"k1"})", Claims(absl::Now())), absl::Now());
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->ns, "shop");
  EXPECT_EQ(sa->name, "cart");
  // The same RSA key cannot be used with an ES256 header.
  ExpectRefused(*MintServiceAccountToken(key_, {"a", "b"}, "istio-ca", "tandem",
                                         absl::Now(), absl::Hours(1)),
                "unknown_key", verifier.get());
}

TEST_F(JwtTest, AcceptsTokensOfEveryJwksKeyAndMatchesKid) {
  RsaSigner rsa;
  std::string jwks =
      absl::StrCat(R"({"keys":[)", rsa.Jwk("rsa-1"), ",", EcJwk(key_, "ec-1"),
                   R"(,{"kty":"EC","use":"enc","crv":"P-256"}]})");
  absl::StatusOr<std::unique_ptr<JwtVerifier>> verifier =
      JwtVerifier::Create({"", jwks, "istio-ca", ""});
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ((*verifier)->key_count(), 2u);
  EXPECT_TRUE(
      (*verifier)
          ->Verify(rsa.Sign(R"({"alg":"RS256","kid":"rsa-1"})", Claims(absl::Now())),
                   absl::Now())
          .ok());
  EXPECT_TRUE((*verifier)->Verify(Mint(absl::Now()), absl::Now()).ok());
  ExpectRefused(rsa.Sign(R"({"alg":"RS256","kid":"rsa-2"})", Claims(absl::Now())),
                "unknown_key", verifier->get());
}

TEST(JwtVerifierTest, RefusesBadKeys) {
  EXPECT_EQ(JwtVerifier::Create({"not a key", "", "aud", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JwtVerifier::Create({"", "", "aud", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JwtVerifier::Create({"", R"({"keys":[]})", "aud", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JwtVerifier::Create({"", "[]", "aud", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A point that is not on the curve.
  std::string bad_point = absl::StrCat(R"({"keys":[{"kty":"EC","crv":"P-256","x":")",
                                       B64(std::string(32, '\1')), R"(","y":")",
                                       B64(std::string(32, '\2')), R"("}]})");
  EXPECT_EQ(JwtVerifier::Create({"", bad_point, "aud", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // RSA keys under 2048 bits are refused.
  bssl::UniquePtr<RSA> small(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  BN_set_word(e.get(), RSA_F4);
  ASSERT_TRUE(RSA_generate_key_ex(small.get(), 1024, e.get(), nullptr));
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_RSA_PUBKEY(bio.get(), small.get());
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  EXPECT_EQ(JwtVerifier::Create(
                {std::string(reinterpret_cast<const char*>(data), len), "", "aud", ""})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::controlplane
