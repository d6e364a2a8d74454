#ifndef TANDEM_CONTROLPLANE_JWT_H_
#define TANDEM_CONTROLPLANE_JWT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::controlplane {

// The Kubernetes service account a token speaks for.
struct ServiceAccount {
  std::string ns;
  std::string name;
};

// Verifies ES256 JWTs (Kubernetes service-account tokens signed with a P-256 key) for
// standalone use, where the CA holds the token issuer's public key. Checks the
// signature, exp/nbf (with 30 s leeway), the audience and, if set, the issuer, then
// reads the service account from "kubernetes.io" or "sub" ("system:serviceaccount:
// <ns>:<name>"). Strict: base64url without padding, JSON objects only, bounded size.
// Immutable after Create; any thread may call Verify.
// The header names no BoringSSL type, so gRPC code may include it.
class JwtVerifier {
 public:
  struct Options {
    std::string public_key_pem;  // SubjectPublicKeyInfo, P-256
    std::string audience = "istio-ca";
    std::string issuer;  // empty: any
  };
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(Options options);
  ~JwtVerifier();
  // Refusals are kUnauthenticated naming the reason.
  absl::StatusOr<ServiceAccount> Verify(const std::string& token, absl::Time now) const;

  struct Key;

 private:
  JwtVerifier(Options options, std::unique_ptr<Key> key);
  Options options_;
  std::unique_ptr<Key> key_;
};

// Mints ES256 service-account tokens for standalone meshes and the demo (the role the
// Kubernetes API server plays in a cluster).
absl::StatusOr<std::string> MintServiceAccountToken(const std::string& private_key_pem,
                                                    const ServiceAccount& account,
                                                    const std::string& audience,
                                                    const std::string& issuer,
                                                    absl::Time now, absl::Duration ttl);
// Returns the PEM public key of a PEM private key (to configure a verifier).
absl::StatusOr<std::string> PublicKeyPemOf(const std::string& private_key_pem);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_JWT_H_
