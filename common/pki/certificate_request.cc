#include "common/pki/certificate_request.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/pki/key_policy.h"

namespace tandem::pki {
namespace {

// CSRs come from untrusted callers; a sane one is well under this.
constexpr size_t kMaxCsrPemBytes = 16 * 1024;

absl::Status Refuse(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("CSR refused: ", why));
}

}  // namespace

CertificateRequest::CertificateRequest(X509_REQ* owned) : req_(owned, X509_REQ_free) {
  public_key_.reset(X509_REQ_get_pubkey(owned), EVP_PKEY_free);
}

absl::StatusOr<CertificateRequest> CertificateRequest::Create(const PrivateKey& key,
                                                              const SpiffeId& id) {
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  std::string uri = id.ToString();
  bssl::UniquePtr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (!req || !names || !name || !ia5 ||
      !ASN1_STRING_set(ia5, uri.data(), static_cast<int>(uri.size()))) {
    GENERAL_NAME_free(name);
    ASN1_IA5STRING_free(ia5);
    return absl::InternalError("CSR: allocation failed");
  }
  GENERAL_NAME_set0_value(name, GEN_URI, ia5);
  sk_GENERAL_NAME_push(names.get(), name);
  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  X509_EXTENSION* san = X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get());
  if (san == nullptr || !sk_X509_EXTENSION_push(exts.get(), san)) {
    X509_EXTENSION_free(san);
    return absl::InternalError("CSR: SAN encoding failed");
  }
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  if (!X509_REQ_set_version(req.get(), 0) ||
      !X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                  reinterpret_cast<const uint8_t*>("tandem"), -1, -1,
                                  0) ||
      !X509_REQ_set_pubkey(req.get(), key.get()) ||
      !X509_REQ_add_extensions(req.get(), exts.get()) ||
      !X509_REQ_sign(req.get(), key.get(), EVP_sha256())) {
    return absl::InternalError("CSR: signing failed");
  }
  return CertificateRequest(req.release());
}

absl::StatusOr<CertificateRequest> CertificateRequest::FromPem(std::string_view pem) {
  if (pem.size() > kMaxCsrPemBytes) return Refuse("larger than 16 KiB");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), pem.size()));
  X509_REQ* raw = PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr);
  ERR_clear_error();
  if (raw == nullptr) return Refuse("not a PEM certificate request");
  CertificateRequest csr(raw);
  const uint8_t* rest;
  size_t rest_len;
  BIO_mem_contents(bio.get(), &rest, &rest_len);
  if (!absl::StripAsciiWhitespace(
           absl::string_view(reinterpret_cast<const char*>(rest), rest_len))
           .empty()) {
    return Refuse("trailing data after the request");
  }
  EVP_PKEY* pub = csr.public_key();
  if (pub == nullptr) return Refuse("public key is missing or malformed");
  if (absl::Status s = CheckKeyStrength(pub); !s.ok()) return Refuse(s.message());
  int verified = X509_REQ_verify(raw, pub);
  ERR_clear_error();
  if (verified != 1) return Refuse("signature does not verify");
  return csr;
}

std::string CertificateRequest::ToPem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req_.get());
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::vector<std::string> CertificateRequest::RequestedUris() const {
  std::vector<std::string> uris;
  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(X509_REQ_get_extensions(req_.get()));
  ERR_clear_error();
  if (!exts) return uris;
  for (size_t i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    bssl::UniquePtr<GENERAL_NAMES> names(
        static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    if (!names) continue;
    for (size_t j = 0; j < sk_GENERAL_NAME_num(names.get()); ++j) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), j);
      if (name->type != GEN_URI) continue;
      const ASN1_STRING* s = name->d.uniformResourceIdentifier;
      uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        ASN1_STRING_length(s));
    }
  }
  return uris;
}

EVP_PKEY* CertificateRequest::public_key() const { return public_key_.get(); }

}  // namespace tandem::pki
