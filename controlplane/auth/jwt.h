#ifndef TANDEM_CONTROLPLANE_AUTH_JWT_H_
#define TANDEM_CONTROLPLANE_AUTH_JWT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/auth/token_authenticator.h"

namespace tandem::controlplane {

// Verifies Kubernetes service-account JWTs for standalone use, where the CA holds the
// token issuer's public keys: ES256 (P-256) and RS256 (RSA >= 2048 bits), keys given
// as PEM public keys and/or a JWKS document (as served by the API server's
// /openid/v1/jwks). Checks the signature first, then exp (required), nbf and iat (30 s
// leeway), the audience and, if set, the issuer, then reads the service account from
// "kubernetes.io" or "sub" ("system:serviceaccount:<ns>:<name>"). Strict: unpadded
// base64url, JSON objects, numeric times, bounded size; a "kid" in the header must
// name a configured key when the keys have ids.
// Immutable after Create; any thread may call Verify / Authenticate.
// The header names no BoringSSL type, so gRPC code may include it.
class JwtVerifier : public TokenAuthenticator {
 public:
  struct Options {
    // Zero or more PEM SubjectPublicKeyInfo keys (EC P-256 or RSA), concatenated.
    std::string public_keys_pem;
    // A JWKS document {"keys":[...]} with EC P-256 and/or RSA keys; may be empty.
    std::string jwks_json;
    std::string audience = "istio-ca";
    std::string issuer;  // empty: any
  };
  // Refuses options with no usable key (kInvalidArgument naming the problem).
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(Options options);
  ~JwtVerifier() override;
  // Refusals are kUnauthenticated naming the reason, with a refusal-reason payload.
  absl::StatusOr<ServiceAccount> Verify(const std::string& token, absl::Time now) const;
  absl::StatusOr<ServiceAccount> Authenticate(const std::string& token,
                                              absl::Time now) const override {
    return Verify(token, now);
  }
  size_t key_count() const;

  struct Keys;

 private:
  JwtVerifier(Options options, std::unique_ptr<Keys> keys);
  Options options_;
  std::unique_ptr<Keys> keys_;
};

// Mints ES256 service-account tokens for standalone meshes and the demo (the role the
// Kubernetes API server plays in a cluster).
absl::StatusOr<std::string> MintServiceAccountToken(const std::string& private_key_pem,
                                                    const ServiceAccount& account,
                                                    const std::string& audience,
                                                    const std::string& issuer,
                                                    absl::Time now, absl::Duration ttl);
// Returns the ES256 JWS compact serialization of `header_json` and `payload_json`
// (encoded as given, not re-serialized) signed with a P-256 PEM private key. Tokens
// for tests and fuzzing with arbitrary headers and claims use it too.
absl::StatusOr<std::string> SignEs256Jws(const std::string& private_key_pem,
                                         const std::string& header_json,
                                         const std::string& payload_json);
// Returns the PEM public key of a PEM private key (to configure a verifier).
absl::StatusOr<std::string> PublicKeyPemOf(const std::string& private_key_pem);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_AUTH_JWT_H_
