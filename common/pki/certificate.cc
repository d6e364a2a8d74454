#include "common/pki/certificate.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tandem::pki {
namespace {

absl::Time Asn1ToTime(const ASN1_TIME* t) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, seconds = 0;
  if (t == nullptr || !ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) {
    return absl::InfinitePast();
  }
  return absl::FromUnixSeconds(int64_t{days} * 86400 + seconds);
}

std::string BioToString(BIO* bio) {
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string NameToString(X509_NAME* name) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  return BioToString(bio.get());
}

}  // namespace

Certificate::Certificate(X509* owned) : x509_(owned, X509_free) {}

Certificate Certificate::FromX509(X509* x509) {
  X509_up_ref(x509);
  return Certificate(x509);
}

absl::StatusOr<Certificate> Certificate::FromPem(std::string_view pem) {
  absl::StatusOr<std::vector<Certificate>> chain = ChainFromPem(pem);
  if (!chain.ok()) return chain.status();
  if (chain->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate: expected one PEM certificate, found ", chain->size()));
  }
  return chain->front();
}

absl::StatusOr<Certificate> Certificate::FromDer(std::string_view der) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
  X509* x509 = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x509 == nullptr) return absl::InvalidArgumentError("certificate: malformed DER");
  Certificate cert(x509);
  if (p != reinterpret_cast<const uint8_t*>(der.data()) + der.size()) {
    return absl::InvalidArgumentError("certificate: trailing bytes after DER");
  }
  return cert;
}

absl::StatusOr<std::vector<Certificate>> Certificate::ChainFromPem(std::string_view pem) {
  // The PEM reader skips text it does not recognise; we refuse what follows the last
  // certificate instead of silently ignoring it.
  constexpr absl::string_view kEnd = "-----END CERTIFICATE-----";
  absl::string_view all(pem.data(), pem.size());
  size_t last_end = all.rfind(kEnd);
  if (last_end != absl::string_view::npos &&
      !absl::StripAsciiWhitespace(all.substr(last_end + kEnd.size())).empty()) {
    return absl::InvalidArgumentError(
        "certificate: trailing data after PEM certificates");
  }
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), pem.size()));
  std::vector<Certificate> chain;
  while (true) {
    X509* x509 = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x509 == nullptr) break;
    chain.push_back(Certificate(x509));
  }
  uint32_t err = ERR_peek_last_error();
  bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (chain.empty()) {
    return absl::InvalidArgumentError("certificate: no PEM certificate found");
  }
  if (!clean_end) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate: malformed PEM after certificate ", chain.size()));
  }
  return chain;
}

std::string Certificate::ToPem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x509_.get());
  return BioToString(bio.get());
}

std::string Certificate::ToDer() const {
  uint8_t* der = nullptr;
  int len = i2d_X509(x509_.get(), &der);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  return out;
}

std::string Certificate::ChainToPem(const std::vector<Certificate>& chain) {
  std::string out;
  for (const Certificate& cert : chain) out += cert.ToPem();
  return out;
}

absl::StatusOr<SpiffeId> Certificate::GetSpiffeId() const {
  int critical = -1;
  bssl::UniquePtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x509_.get(), NID_subject_alt_name, &critical, nullptr)));
  if (names == nullptr) {
    if (critical == -1) return absl::NotFoundError("certificate has no SAN extension");
    return absl::InvalidArgumentError(
        "certificate SAN extension is malformed or repeated");
  }
  std::vector<std::string_view> uris;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_STRING* s = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      ASN1_STRING_length(s));
  }
  if (uris.empty()) return absl::NotFoundError("certificate has no URI SAN");
  if (uris.size() > 1) {
    return absl::InvalidArgumentError("certificate has more than one URI SAN");
  }
  return SpiffeId::Parse(uris.front());
}

absl::Time Certificate::not_before() const {
  return Asn1ToTime(X509_get0_notBefore(x509_.get()));
}

absl::Time Certificate::not_after() const {
  return Asn1ToTime(X509_get0_notAfter(x509_.get()));
}

std::string Certificate::SerialHex() const {
  bssl::UniquePtr<BIGNUM> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(x509_.get()), nullptr));
  if (!bn) return "";
  char* hex = BN_bn2hex(bn.get());
  std::string out = absl::AsciiStrToLower(hex);
  OPENSSL_free(hex);
  size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? "0" : out.substr(first);
}

std::string Certificate::Subject() const {
  return NameToString(X509_get_subject_name(x509_.get()));
}

std::string Certificate::Issuer() const {
  return NameToString(X509_get_issuer_name(x509_.get()));
}

bool Certificate::IsCa() const { return X509_check_ca(x509_.get()) > 0; }

bool Certificate::MatchesKey(const PrivateKey& key) const {
  bool match = X509_check_private_key(x509_.get(), key.get()) == 1;
  ERR_clear_error();
  return match;
}

}  // namespace tandem::pki
