#ifndef TANDEM_COMMON_PKI_PRIVATE_KEY_H_
#define TANDEM_COMMON_PKI_PRIVATE_KEY_H_

#include <openssl/base.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem::pki {

// A private key held in memory: ECDSA P-256 when tandem makes it (workload keys are
// generated where they are used and never written to disk by tandem); ECDSA P-384 or
// RSA of 2048-8192 bits when loaded (a CA key, or a workload key from Istio's agent;
// key_policy.h). Copies share the same immutable key (EVP_PKEY is reference counted),
// so any thread may use a PrivateKey.
class PrivateKey {
 public:
  // Generates a fresh P-256 key.
  static absl::StatusOr<PrivateKey> GenerateP256();
  // Parses a PEM key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY").
  // kInvalidArgument for a key CheckKeyStrength refuses, naming why.
  static absl::StatusOr<PrivateKey> FromPem(std::string_view pem);

  // Returns the key as PKCS#8 PEM. The caller owns where it goes.
  absl::StatusOr<std::string> ToPem() const;
  // Returns the DER SubjectPublicKeyInfo of the public half.
  std::string PublicKeyDer() const;

  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit PrivateKey(bssl::UniquePtr<EVP_PKEY> key);

  // Shared, never mutated after construction.
  std::shared_ptr<EVP_PKEY> key_;
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_PRIVATE_KEY_H_
