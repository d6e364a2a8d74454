// BoringSSL code: never include gRPC headers here.
#include "tests/support/test_csr.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace tandem::controlplane {

std::string MakeRsaCsrPem(const std::string& uri_san, int bits) {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  BN_set_word(e.get(), RSA_F4);
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  if (!RSA_generate_key_ex(rsa.get(), bits, e.get(), nullptr) ||
      !EVP_PKEY_assign_RSA(pkey.get(), rsa.release()) ||
      !X509_REQ_set_version(req.get(), 0) ||
      !X509_REQ_set_pubkey(req.get(), pkey.get())) {
    return "";
  }
  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  bssl::UniquePtr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  ASN1_STRING_set(ia5, uri_san.data(), static_cast<int>(uri_san.size()));
  GENERAL_NAME_set0_value(name, GEN_URI, ia5);
  sk_GENERAL_NAME_push(names.get(), name);
  X509_EXTENSION* san = X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get());
  if (san == nullptr || !sk_X509_EXTENSION_push(exts.get(), san) ||
      !X509_REQ_add_extensions(req.get(), exts.get()) ||
      !X509_REQ_sign(req.get(), pkey.get(), EVP_sha256())) {
    return "";
  }
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace tandem::controlplane
