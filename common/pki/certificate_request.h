#ifndef TANDEM_COMMON_PKI_CERTIFICATE_REQUEST_H_
#define TANDEM_COMMON_PKI_CERTIFICATE_REQUEST_H_

#include <openssl/base.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pki/private_key.h"
#include "common/spiffe_id.h"

namespace tandem::pki {

// A PKCS#10 certificate signing request. Immutable; any thread may use it.
class CertificateRequest {
 public:
  // Builds a CSR signed by `key` that asks for `id` as its URI SAN.
  static absl::StatusOr<CertificateRequest> Create(const PrivateKey& key,
                                                   const SpiffeId& id);
  // Parses a PEM CSR from an untrusted caller and verifies it: one well-formed request,
  // a valid self-signature, a public key CheckKeyStrength accepts (ECDSA P-256/P-384,
  // RSA 2048-8192). Each refusal is kInvalidArgument naming what is wrong.
  static absl::StatusOr<CertificateRequest> FromPem(std::string_view pem);

  std::string ToPem() const;
  // The URI SANs the requester asked for (the CA ignores them: identity comes from
  // authentication, never from the CSR).
  std::vector<std::string> RequestedUris() const;

  X509_REQ* get() const { return req_.get(); }
  // Returns the requester's public key (owned by the request).
  EVP_PKEY* public_key() const;

 private:
  explicit CertificateRequest(X509_REQ* owned);

  std::shared_ptr<X509_REQ> req_;
  std::shared_ptr<EVP_PKEY> public_key_;
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_CERTIFICATE_REQUEST_H_
