#include "common/pki/certificate_authority.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/pki/key_policy.h"

namespace tandem::pki {
namespace {

// Backdates not-before so peers with slightly slow clocks accept fresh certificates.
constexpr absl::Duration kClockSkew = absl::Minutes(1);

absl::Status SetRandomSerial(X509* x509) {
  uint8_t bytes[16];
  RAND_bytes(bytes, sizeof(bytes));
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x40;  // and never shortened by a leading zero byte
  bssl::UniquePtr<BIGNUM> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  bssl::UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || !X509_set_serialNumber(x509, serial.get())) {
    return absl::InternalError("serial number encoding failed");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* x509, absl::Time from, absl::Time to) {
  bssl::UniquePtr<ASN1_TIME> nb(ASN1_TIME_set(nullptr, absl::ToTimeT(from)));
  bssl::UniquePtr<ASN1_TIME> na(ASN1_TIME_set(nullptr, absl::ToTimeT(to)));
  if (!nb || !na || !X509_set1_notBefore(x509, nb.get()) ||
      !X509_set1_notAfter(x509, na.get())) {
    return absl::InternalError("validity encoding failed");
  }
  return absl::OkStatus();
}

// Adds one extension written in OpenSSL's config syntax ("critical,CA:FALSE").
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(
      X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1)) {
    ERR_clear_error();
    return absl::InternalError(
        absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value, " could not be encoded"));
  }
  return absl::OkStatus();
}

absl::Status SetName(X509_NAME* name, const std::string& org, const std::string& cn) {
  auto add = [&](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const uint8_t*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0);
  };
  if (!add("O", org) || !add("CN", cn))
    return absl::InternalError("name encoding failed");
  return absl::OkStatus();
}

// Builds and signs a CA certificate over `subject_key`, signed by `issuer` (or self-
// signed when issuer is null).
absl::StatusOr<Certificate> BuildCaCert(const CertificateAuthority::RootOptions& options,
                                        const PrivateKey& subject_key,
                                        const CertificateAuthority* issuer,
                                        absl::Time now) {
  if (absl::Status s = SpiffeId::ValidateTrustDomain(options.trust_domain); !s.ok()) {
    return s;
  }
  bssl::UniquePtr<X509> x509(X509_new());
  absl::Time not_after = now + options.lifetime;
  if (issuer != nullptr)
    not_after = std::min(not_after, issuer->certificate().not_after());
  X509* issuer_x509 = issuer ? issuer->certificate().get() : x509.get();
  if (!X509_set_version(x509.get(), X509_VERSION_3)) {
    return absl::InternalError("version encoding failed");
  }
  for (absl::Status s :
       {SetRandomSerial(x509.get()), SetValidity(x509.get(), now - kClockSkew, not_after),
        SetName(X509_get_subject_name(x509.get()), options.organization,
                options.common_name)}) {
    if (!s.ok()) return s;
  }
  if (!X509_set_issuer_name(x509.get(), X509_get_subject_name(issuer_x509)) ||
      !X509_set_pubkey(x509.get(), subject_key.get())) {
    return absl::InternalError("CA certificate encoding failed");
  }
  std::string constraints = issuer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE";
  for (absl::Status s :
       {AddExtension(x509.get(), issuer_x509, NID_basic_constraints, constraints),
        AddExtension(x509.get(), issuer_x509, NID_key_usage,
                     "critical,keyCertSign,cRLSign,digitalSignature"),
        AddExtension(x509.get(), issuer_x509, NID_subject_key_identifier, "hash"),
        AddExtension(x509.get(), issuer_x509, NID_authority_key_identifier,
                     "keyid:always"),
        AddExtension(x509.get(), issuer_x509, NID_subject_alt_name,
                     "URI:spiffe://" + options.trust_domain)}) {
    if (!s.ok()) return s;
  }
  const PrivateKey& signer = issuer ? issuer->key() : subject_key;
  if (!X509_sign(x509.get(), signer.get(), SigningDigestFor(signer.get()))) {
    return absl::InternalError("CA certificate signing failed");
  }
  return Certificate::FromX509(x509.get());
}

// Returns true when `child` is signed by `parent`'s key and names it as issuer.
bool IssuedBy(const Certificate& child, const Certificate& parent) {
  bool ok = X509_check_issued(parent.get(), child.get()) == X509_V_OK;
  if (ok) {
    bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(parent.get()));
    ok = key && X509_verify(child.get(), key.get()) == 1;
  }
  ERR_clear_error();
  return ok;
}

}  // namespace

absl::StatusOr<CertificateAuthority> CertificateAuthority::CreateRoot(
    const RootOptions& options, absl::Time now) {
  absl::StatusOr<PrivateKey> key = PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<Certificate> cert = BuildCaCert(options, *key, nullptr, now);
  if (!cert.ok()) return cert.status();
  return CertificateAuthority(*std::move(key), {*std::move(cert)});
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::CreateIntermediate(
    const RootOptions& options, absl::Time now) const {
  absl::StatusOr<PrivateKey> key = PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<Certificate> cert = BuildCaCert(options, *key, this, now);
  if (!cert.ok()) return cert.status();
  std::vector<Certificate> chain = {*std::move(cert)};
  chain.insert(chain.end(), chain_.begin(), chain_.end());
  return CertificateAuthority(*std::move(key), std::move(chain));
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::FromPem(
    std::string_view key_pem, std::string_view chain_pem) {
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(key_pem);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::vector<Certificate>> chain = Certificate::ChainFromPem(chain_pem);
  if (!chain.ok()) return chain.status();
  if (!chain->front().MatchesKey(*key)) {
    return absl::InvalidArgumentError("CA: the key does not match the CA certificate");
  }
  for (size_t i = 0; i < chain->size(); ++i) {
    bssl::UniquePtr<EVP_PKEY> public_key(X509_get_pubkey((*chain)[i].get()));
    ERR_clear_error();
    if (absl::Status s = CheckKeyStrength(public_key.get()); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CA: certificate ", i, " of the chain: ", s.message()));
    }
    if (!(*chain)[i].IsCa()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CA: certificate ", i, " of the chain is not a CA certificate"));
    }
    const Certificate& parent = i + 1 < chain->size() ? (*chain)[i + 1] : (*chain)[i];
    if (!IssuedBy((*chain)[i], parent)) {
      return absl::InvalidArgumentError(
          absl::StrCat("CA: certificate ", i,
                       i + 1 < chain->size() ? " is not issued by the next one"
                                             : " (last) is not self-signed"));
    }
  }
  return CertificateAuthority(*std::move(key), *std::move(chain));
}

absl::StatusOr<Certificate> CertificateAuthority::IssueWorkload(
    const CertificateRequest& csr, const SpiffeId& identity, absl::Duration ttl,
    absl::Time now) const {
  return IssueLeaf(csr.public_key(), "critical,URI:" + identity.ToString(), ttl, now);
}

absl::StatusOr<Certificate> CertificateAuthority::IssueServer(
    const PrivateKey& key, const SpiffeId& identity,
    const std::vector<std::string>& dns_names,
    const std::vector<std::string>& ip_addresses, absl::Duration ttl,
    absl::Time now) const {
  std::string san = "critical,URI:" + identity.ToString();
  for (const std::string& dns : dns_names) {
    if (dns.empty() || dns.find_first_of(", :") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad DNS name \"", dns, "\""));
    }
    absl::StrAppend(&san, ",DNS:", dns);
  }
  for (const std::string& ip : ip_addresses) {
    if (ip.empty() || ip.find_first_of(", ") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad IP address \"", ip, "\""));
    }
    absl::StrAppend(&san, ",IP:", ip);
  }
  return IssueLeaf(key.get(), san, ttl, now);
}

absl::StatusOr<Certificate> CertificateAuthority::IssueLeaf(EVP_PKEY* public_key,
                                                            const std::string& san,
                                                            absl::Duration ttl,
                                                            absl::Time now) const {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("workload certificate TTL must be positive");
  }
  const Certificate& ca = certificate();
  absl::Time not_after = std::min(now + ttl, ca.not_after());
  if (not_after <= now) {
    return absl::FailedPreconditionError("CA certificate has expired");
  }
  bssl::UniquePtr<X509> x509(X509_new());
  if (!X509_set_version(x509.get(), X509_VERSION_3)) {
    return absl::InternalError("version encoding failed");
  }
  for (absl::Status s : {SetRandomSerial(x509.get()),
                         SetValidity(x509.get(), now - kClockSkew, not_after)}) {
    if (!s.ok()) return s;
  }
  // The subject stays empty, as in SPIFFE X.509-SVIDs, so the SAN is critical.
  if (!X509_set_issuer_name(x509.get(), X509_get_subject_name(ca.get())) ||
      !X509_set_pubkey(x509.get(), public_key)) {
    return absl::InternalError("workload certificate encoding failed");
  }
  for (absl::Status s :
       {AddExtension(x509.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"),
        AddExtension(x509.get(), ca.get(), NID_key_usage,
                     "critical,digitalSignature,keyEncipherment"),
        AddExtension(x509.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth"),
        AddExtension(x509.get(), ca.get(), NID_subject_key_identifier, "hash"),
        AddExtension(x509.get(), ca.get(), NID_authority_key_identifier, "keyid:always"),
        AddExtension(x509.get(), ca.get(), NID_subject_alt_name, san)}) {
    if (!s.ok()) return s;
  }
  if (!X509_sign(x509.get(), key_.get(), SigningDigestFor(key_.get()))) {
    return absl::InternalError("workload certificate signing failed");
  }
  return Certificate::FromX509(x509.get());
}

std::vector<Certificate> CertificateAuthority::IntermediatesForLeaf() const {
  std::vector<Certificate> out(chain_.begin(), chain_.end() - 1);
  return out;
}

}  // namespace tandem::pki
