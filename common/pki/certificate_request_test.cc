#include "common/pki/certificate_request.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem::pki {
namespace {

TEST(CertificateRequestTest, CarriesRequestedSpiffeId) {
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/ns/a/sa/b");
  absl::StatusOr<CertificateRequest> csr = CertificateRequest::Create(key, id);
  ASSERT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<CertificateRequest> parsed = CertificateRequest::FromPem(csr->ToPem());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->RequestedUris(), std::vector<std::string>{id.ToString()});
}

void ExpectRefused(std::string_view pem, std::string_view reason) {
  absl::StatusOr<CertificateRequest> csr = CertificateRequest::FromPem(pem);
  ASSERT_FALSE(csr.ok());
  EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(csr.status().message()).find(reason), std::string::npos)
      << csr.status();
}

TEST(CertificateRequestTest, RefusesGarbage) { ExpectRefused("garbage", "not a PEM"); }

TEST(CertificateRequestTest, RefusesOversizedInput) {
  ExpectRefused(std::string(20000, 'A'), "16 KiB");
}

TEST(CertificateRequestTest, RefusesTrailingData) {
  PrivateKey key = *PrivateKey::GenerateP256();
  std::string pem =
      CertificateRequest::Create(key, *SpiffeId::Parse("spiffe://td/x"))->ToPem();
  ExpectRefused(pem + "junk", "trailing");
}

TEST(CertificateRequestTest, RefusesBadSignature) {
  PrivateKey key = *PrivateKey::GenerateP256();
  CertificateRequest csr =
      *CertificateRequest::Create(key, *SpiffeId::Parse("spiffe://td/x"));
  // Flip one byte of the DER signature (the last bytes of the request).
  uint8_t* der = nullptr;
  int len = i2d_X509_REQ(csr.get(), &der);
  ASSERT_GT(len, 10);
  der[len - 3] ^= 0x01;
  const uint8_t* p = der;
  bssl::UniquePtr<X509_REQ> tampered(d2i_X509_REQ(nullptr, &p, len));
  OPENSSL_free(der);
  ASSERT_TRUE(tampered);
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), tampered.get());
  const uint8_t* data;
  size_t data_len;
  BIO_mem_contents(bio.get(), &data, &data_len);
  ExpectRefused(std::string(reinterpret_cast<const char*>(data), data_len), "signature");
}

TEST(CertificateRequestTest, RefusesWeakRsaKey) {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  BN_set_word(e.get(), RSA_F4);
  ASSERT_TRUE(RSA_generate_key_ex(rsa.get(), 1024, e.get(), nullptr));
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  EVP_PKEY_assign_RSA(pkey.get(), rsa.release());
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  X509_REQ_set_pubkey(req.get(), pkey.get());
  ASSERT_TRUE(X509_REQ_sign(req.get(), pkey.get(), EVP_sha256()));
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  const uint8_t* data;
  size_t data_len;
  BIO_mem_contents(bio.get(), &data, &data_len);
  ExpectRefused(std::string(reinterpret_cast<const char*>(data), data_len),
                "RSA-1024 is too weak");
}

}  // namespace
}  // namespace tandem::pki
