// What tandem accepts from outside, checked on keys and CSRs made by the openssl
// command-line tool at run time, as operators and Istio's tooling make them.
#include "common/pki/key_policy.h"

#include <openssl/evp.h>

#include "absl/status/status.h"
#include "common/pki/certificate_request.h"
#include "common/pki/private_key.h"
#include "gtest/gtest.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/temp_dir.h"

namespace tandem::pki {
namespace {

using ::tandem::testing::OpensslCli;
using ::tandem::testing::TempDir;

constexpr char kUri[] = "spiffe://cluster.local/ns/shop/sa/cart";

class KeyPolicyTest : public ::testing::Test {
 protected:
  // Returns the openssl-made CSR over a fresh `algorithm` key, parsed by tandem.
  absl::StatusOr<CertificateRequest> OpensslCsr(const std::string& algorithm) {
    std::string name = "k" + std::to_string(next_++);
    absl::StatusOr<std::string> key = openssl_.GenerateKey(name, algorithm);
    EXPECT_TRUE(key.ok()) << key.status();
    absl::StatusOr<std::string> csr = openssl_.MakeCsr(name, kUri);
    EXPECT_TRUE(csr.ok()) << csr.status();
    if (!csr.ok()) return csr.status();
    return CertificateRequest::FromPem(*csr);
  }
  // Expects the CSR refused as kInvalidArgument with exactly `message`.
  void ExpectCsrRefused(const std::string& algorithm, const std::string& message) {
    absl::StatusOr<CertificateRequest> csr = OpensslCsr(algorithm);
    ASSERT_FALSE(csr.ok()) << algorithm << " was accepted";
    EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(csr.status().message(), message);
  }

  TempDir dir_{"tandem-key-policy"};
  OpensslCli openssl_{dir_.path()};
  int next_ = 0;
};

TEST_F(KeyPolicyTest, AcceptsOpensslRsaCsrsOf2048And3072And4096Bits) {
  for (int bits : {2048, 3072, 4096}) {
    absl::StatusOr<CertificateRequest> csr = OpensslCsr("RSA:" + std::to_string(bits));
    ASSERT_TRUE(csr.ok()) << bits << ": " << csr.status();
    EXPECT_EQ(DescribeKey(csr->public_key()), "RSA-" + std::to_string(bits));
    EXPECT_EQ(csr->RequestedUris(), std::vector<std::string>{kUri});
  }
}

TEST_F(KeyPolicyTest, AcceptsOpensslEcdsaCsrsOnP256AndP384) {
  for (const char* curve : {"P-256", "P-384"}) {
    absl::StatusOr<CertificateRequest> csr = OpensslCsr(std::string("EC:") + curve);
    ASSERT_TRUE(csr.ok()) << curve << ": " << csr.status();
    EXPECT_EQ(DescribeKey(csr->public_key()), std::string("ECDSA ") + curve);
  }
}

TEST_F(KeyPolicyTest, RefusesRsaBelow2048BitsAsTooWeak) {
  ExpectCsrRefused("RSA:1024",
                   "CSR refused: RSA-1024 is too weak: RSA keys need at least 2048 bits");
  ExpectCsrRefused("RSA:2040",
                   "CSR refused: RSA-2040 is too weak: RSA keys need at least 2048 bits");
}

TEST_F(KeyPolicyTest, RefusesCurvesOtherThanP256AndP384) {
  ExpectCsrRefused("EC:secp521r1",
                   "CSR refused: ECDSA secp521r1 is not accepted: the curve must be "
                   "P-256 or P-384");
  // BoringSSL does not implement secp256k1: its key does not even parse.
  ExpectCsrRefused("EC:secp256k1", "CSR refused: public key is missing or malformed");
}

TEST_F(KeyPolicyTest, RefusesEd25519) {
  ExpectCsrRefused("ED25519",
                   "CSR refused: Ed25519 is not accepted: use ECDSA P-256 or P-384, or "
                   "RSA of 2048 to 8192 bits");
}

TEST_F(KeyPolicyTest, LoadsOpensslRsaAndP384PrivateKeysAndRefusesWeakOnes) {
  for (const char* algorithm : {"RSA:2048", "EC:P-384"}) {
    absl::StatusOr<std::string> pem = openssl_.GenerateKey("ok", algorithm);
    ASSERT_TRUE(pem.ok()) << pem.status();
    absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(*pem);
    EXPECT_TRUE(key.ok()) << algorithm << ": " << key.status();
  }
  absl::StatusOr<std::string> weak = openssl_.GenerateKey("weak", "RSA:1024");
  ASSERT_TRUE(weak.ok()) << weak.status();
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(*weak);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().message(),
            "private key: RSA-1024 is too weak: RSA keys need at least 2048 bits");
}

TEST_F(KeyPolicyTest, SignsWithSha384UnderP384AndSha256Otherwise) {
  PrivateKey p256 = *PrivateKey::GenerateP256();
  EXPECT_EQ(SigningDigestFor(p256.get()), EVP_sha256());
  absl::StatusOr<std::string> p384 = openssl_.GenerateKey("p384", "EC:P-384");
  absl::StatusOr<std::string> rsa = openssl_.GenerateKey("rsa", "RSA:2048");
  ASSERT_TRUE(p384.ok() && rsa.ok());
  EXPECT_EQ(SigningDigestFor(PrivateKey::FromPem(*p384)->get()), EVP_sha384());
  EXPECT_EQ(SigningDigestFor(PrivateKey::FromPem(*rsa)->get()), EVP_sha256());
}

}  // namespace
}  // namespace tandem::pki
