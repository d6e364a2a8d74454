#ifndef TANDEM_COMMON_PKI_CERTIFICATE_AUTHORITY_H_
#define TANDEM_COMMON_PKI_CERTIFICATE_AUTHORITY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/certificate.h"
#include "common/pki/certificate_request.h"
#include "common/pki/private_key.h"
#include "common/spiffe_id.h"

namespace tandem::pki {

// A signing CA: a key and its certificate chain (the CA cert first, its root last; a
// self-signed root is a chain of one). Issues workload and intermediate certificates.
// Immutable after Create; Issue*() may be called from any thread.
class CertificateAuthority {
 public:
  struct RootOptions {
    std::string organization = "tandem";
    std::string common_name = "tandem root CA";
    std::string trust_domain = "cluster.local";
    absl::Duration lifetime = absl::Hours(24 * 365);
  };

  // Generates a fresh self-signed root.
  static absl::StatusOr<CertificateAuthority> CreateRoot(const RootOptions& options,
                                                         absl::Time now);
  // Loads a CA from its key and chain (CA cert first). The key may be ECDSA P-256 or
  // P-384 or RSA 2048-8192 (key_policy.h); what it signs uses SigningDigestFor. Refuses
  // a key that does not match the cert, a weak key anywhere in the chain, a cert that
  // is not a CA, or a broken chain.
  static absl::StatusOr<CertificateAuthority> FromPem(std::string_view key_pem,
                                                      std::string_view chain_pem);

  // Issues an intermediate CA signed by this CA.
  absl::StatusOr<CertificateAuthority> CreateIntermediate(const RootOptions& options,
                                                          absl::Time now) const;

  // Issues a workload certificate for `identity` over the CSR's public key, valid from
  // now-1m (clock skew) to now+ttl, clamped to this CA's own not-after. Extensions: URI
  // SAN = identity (only), EKU serverAuth+clientAuth, KU digitalSignature+
  // keyEncipherment, basic constraints CA:FALSE (critical), SKI, AKI.
  absl::StatusOr<Certificate> IssueWorkload(const CertificateRequest& csr,
                                            const SpiffeId& identity, absl::Duration ttl,
                                            absl::Time now) const;

  // Issues a TLS server certificate for the control plane itself: URI SAN `identity`
  // plus DNS names and IP addresses a gRPC client can check, EKU serverAuth+clientAuth.
  absl::StatusOr<Certificate> IssueServer(const PrivateKey& key, const SpiffeId& identity,
                                          const std::vector<std::string>& dns_names,
                                          const std::vector<std::string>& ip_addresses,
                                          absl::Duration ttl, absl::Time now) const;

  // Returns the chain a workload cert should be served with after its leaf: this CA
  // and its intermediates, excluding the self-signed root.
  std::vector<Certificate> IntermediatesForLeaf() const;
  const Certificate& certificate() const { return chain_.front(); }
  const Certificate& root() const { return chain_.back(); }
  const std::vector<Certificate>& chain() const { return chain_; }
  const PrivateKey& key() const { return key_; }

 private:
  absl::StatusOr<Certificate> IssueLeaf(EVP_PKEY* public_key, const std::string& san,
                                        absl::Duration ttl, absl::Time now) const;
  CertificateAuthority(PrivateKey key, std::vector<Certificate> chain)
      : key_(std::move(key)), chain_(std::move(chain)) {}

  PrivateKey key_;
  std::vector<Certificate> chain_;
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_CERTIFICATE_AUTHORITY_H_
