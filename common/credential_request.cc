// BoringSSL code: never include gRPC headers here.
#include "common/credential_request.h"

#include <openssl/x509.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/pki/certificate_request.h"
#include "common/pki/workload_credentials.h"

namespace tandem {

absl::StatusOr<PendingCredential> NewCredentialRequest(const std::string& spiffe_id) {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(spiffe_id);
  if (!id.ok()) return id.status();
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<pki::CertificateRequest> csr =
      pki::CertificateRequest::Create(*key, *id);
  if (!csr.ok()) return csr.status();
  absl::StatusOr<std::string> key_pem = key->ToPem();
  if (!key_pem.ok()) return key_pem.status();
  return PendingCredential{*std::move(key_pem), csr->ToPem()};
}

absl::StatusOr<IssuedCredential> AcceptCredential(
    const std::string& private_key_pem, const std::vector<std::string>& cert_chain,
    const std::string& extra_roots_pem, const std::string& expected_spiffe_id,
    absl::Time now, const std::string& pinned_roots_pem) {
  auto refuse = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("CA response refused: ", why));
  };
  if (cert_chain.empty()) return refuse("empty certificate chain");
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(private_key_pem);
  if (!key.ok()) return key.status();
  std::vector<pki::Certificate> chain, roots;
  for (size_t i = 0; i < cert_chain.size(); ++i) {
    // An element may itself hold several PEM blocks.
    absl::StatusOr<std::vector<pki::Certificate>> certs =
        pki::Certificate::ChainFromPem(cert_chain[i]);
    if (!certs.ok()) return refuse(certs.status().message());
    for (pki::Certificate& c : *certs) {
      bool self_signed = c.IsCa() && c.Subject() == c.Issuer() && !chain.empty();
      (self_signed ? roots : chain).push_back(std::move(c));
    }
  }
  if (!extra_roots_pem.empty()) {
    absl::StatusOr<std::vector<pki::Certificate>> extra =
        pki::Certificate::ChainFromPem(extra_roots_pem);
    if (!extra.ok()) return refuse(extra.status().message());
    roots.insert(roots.end(), extra->begin(), extra->end());
  }
  if (roots.empty()) return refuse("no root certificate in the response");
  absl::StatusOr<pki::TrustBundle> bundle = pki::TrustBundle::FromCertificates(roots);
  if (!bundle.ok()) return refuse(bundle.status().message());
  pki::WorkloadCredentials creds{*key, chain, *bundle};
  absl::StatusOr<SpiffeId> id = creds.Validate(now);
  if (!id.ok()) return refuse(id.status().message());
  if (!pinned_roots_pem.empty()) {
    absl::StatusOr<pki::TrustBundle> pinned =
        pki::TrustBundle::FromPem(pinned_roots_pem + extra_roots_pem);
    if (!pinned.ok()) return refuse(pinned.status().message());
    absl::StatusOr<SpiffeId> pinned_id = pinned->Verify(chain, now);
    if (!pinned_id.ok()) {
      return refuse(absl::StrCat("chain does not verify against the pinned roots: ",
                                 pinned_id.status().message()));
    }
  }
  if (!expected_spiffe_id.empty() && id->ToString() != expected_spiffe_id) {
    return refuse(absl::StrCat("certificate names ", id->ToString(), ", expected ",
                               expected_spiffe_id));
  }
  IssuedCredential out;
  out.secret = {private_key_pem, pki::Certificate::ChainToPem(chain), bundle->ToPem()};
  out.spiffe_id = id->ToString();
  out.serial = creds.leaf().SerialHex();
  out.not_before = creds.leaf().not_before();
  out.not_after = creds.leaf().not_after();
  return out;
}

}  // namespace tandem
