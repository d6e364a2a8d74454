#ifndef TANDEM_COMMON_PKI_TRUST_BUNDLE_H_
#define TANDEM_COMMON_PKI_TRUST_BUNDLE_H_

#include <openssl/base.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/certificate.h"
#include "common/spiffe_id.h"

namespace tandem::pki {

// Why a peer's chain was refused; used as the `reason` label of refusal metrics.
enum class VerifyFailure {
  kNone,
  kMalformed,    // no certificate, or one that cannot be parsed
  kUnknownCa,    // does not chain to any root in the bundle
  kExpired,      // a certificate in the chain is past not-after
  kNotYetValid,  // a certificate in the chain is before not-before
  kBadIdentity,  // no/several/malformed SPIFFE IDs, or the wrong one
  kNotAllowed,   // the leaf is a CA or lacks the required key usage
};
std::string_view VerifyFailureName(VerifyFailure failure);

// When a verified chain verifies: the overlap of the validity periods of every
// certificate on the verified path, the root's included.
struct Validity {
  absl::Time not_before;
  absl::Time not_after;
};

// A set of trusted root certificates (several at once, so a root can rotate with an
// overlap and no restart). Immutable once built; any thread may call Verify().
class TrustBundle {
 public:
  // Parses one or more PEM CA certificates. Refuses an empty bundle and non-CA certs.
  static absl::StatusOr<TrustBundle> FromPem(std::string_view pem);
  static absl::StatusOr<TrustBundle> FromCertificates(std::vector<Certificate> roots);

  // Verifies `chain` (leaf first, then intermediates) against the roots at `now` and
  // returns the leaf's SPIFFE ID, and in *validity (when non-null) the times between
  // which the same chain verifies. On refusal sets *failure (when non-null) and returns
  // kUnauthenticated (chain problems) or kPermissionDenied (identity problems).
  absl::StatusOr<SpiffeId> Verify(const std::vector<Certificate>& chain, absl::Time now,
                                  VerifyFailure* failure = nullptr,
                                  Validity* validity = nullptr) const;

  const std::vector<Certificate>& roots() const { return roots_; }
  std::string ToPem() const { return Certificate::ChainToPem(roots_); }

 private:
  explicit TrustBundle(std::vector<Certificate> roots) : roots_(std::move(roots)) {}

  std::vector<Certificate> roots_;
  // Built once; X509_STORE is safe for concurrent verification.
  std::shared_ptr<X509_STORE> store_;
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_TRUST_BUNDLE_H_
