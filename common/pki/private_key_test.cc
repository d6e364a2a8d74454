#include "common/pki/private_key.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem::pki {
namespace {

TEST(PrivateKeyTest, GeneratesDistinctP256Keys) {
  absl::StatusOr<PrivateKey> a = PrivateKey::GenerateP256();
  absl::StatusOr<PrivateKey> b = PrivateKey::GenerateP256();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->PublicKeyDer(), b->PublicKeyDer());
  EXPECT_EQ(a->PublicKeyDer().size(), 91u);  // P-256 SubjectPublicKeyInfo
}

TEST(PrivateKeyTest, RoundTripsThroughPem) {
  PrivateKey key = *PrivateKey::GenerateP256();
  absl::StatusOr<std::string> pem = key.ToPem();
  ASSERT_TRUE(pem.ok());
  EXPECT_NE(pem->find("BEGIN PRIVATE KEY"), std::string::npos);
  absl::StatusOr<PrivateKey> back = PrivateKey::FromPem(*pem);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->PublicKeyDer(), key.PublicKeyDer());
}

TEST(PrivateKeyTest, RefusesGarbage) {
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem("not a key");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PrivateKeyTest, RefusesEd25519Key) {
  // An Ed25519 key in PKCS#8: valid PEM, wrong algorithm.
  constexpr char kEd25519[] =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
      "-----END PRIVATE KEY-----\n";
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(kEd25519);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(key.status().message(),
            "private key: Ed25519 is not accepted: use ECDSA P-256 or P-384, or RSA of "
            "2048 to 8192 bits");
}

}  // namespace
}  // namespace tandem::pki
