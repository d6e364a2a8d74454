#ifndef TANDEM_COMMON_PKI_CERTIFICATE_H_
#define TANDEM_COMMON_PKI_CERTIFICATE_H_

#include <openssl/base.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/private_key.h"
#include "common/spiffe_id.h"

namespace tandem::pki {

// An immutable parsed X.509 certificate. Copies share one X509 (reference counted and
// never mutated), so any thread may use a Certificate.
class Certificate {
 public:
  // Parses exactly one PEM certificate.
  static absl::StatusOr<Certificate> FromPem(std::string_view pem);
  static absl::StatusOr<Certificate> FromDer(std::string_view der);
  // Parses one or more concatenated PEM certificates, in order. Refuses an input with
  // no certificate or with trailing garbage.
  static absl::StatusOr<std::vector<Certificate>> ChainFromPem(std::string_view pem);
  // Takes a reference to `x509` (does not adopt the caller's).
  static Certificate FromX509(X509* x509);

  std::string ToPem() const;
  std::string ToDer() const;
  // Concatenates PEMs, in order.
  static std::string ChainToPem(const std::vector<Certificate>& chain);

  // Returns the single SPIFFE URI SAN. Errors: kNotFound when there is none,
  // kInvalidArgument when there are several or it is malformed.
  absl::StatusOr<SpiffeId> GetSpiffeId() const;
  absl::Time not_before() const;
  absl::Time not_after() const;
  // Lower-case hex serial number without leading zeros, e.g. "1f3a".
  std::string SerialHex() const;
  // One-line RFC 2253 subject, e.g. "O=tandem,CN=root".
  std::string Subject() const;
  std::string Issuer() const;
  bool IsCa() const;
  // Returns true when `key` is the private half of this certificate's public key.
  bool MatchesKey(const PrivateKey& key) const;

  X509* get() const { return x509_.get(); }

 private:
  explicit Certificate(X509* owned);

  std::shared_ptr<X509> x509_;
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_CERTIFICATE_H_
