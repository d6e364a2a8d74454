#ifndef TANDEM_CONTROLPLANE_AUTH_TOKEN_AUTHENTICATOR_H_
#define TANDEM_CONTROLPLANE_AUTH_TOKEN_AUTHENTICATOR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::controlplane {

// The Kubernetes service account a caller was authenticated as.
struct ServiceAccount {
  std::string ns;
  std::string name;
};

// Turns a caller's bearer token into the service account it speaks for. Two
// implementations: JwtVerifier (standalone: the CA holds the issuer's public keys) and
// TokenReviewAuthenticator (Kubernetes: the API server decides).
// Implementations are immutable after creation; any thread may call Authenticate.
// Headers of implementations name no BoringSSL type, so gRPC code may include them.
class TokenAuthenticator {
 public:
  virtual ~TokenAuthenticator() = default;
  // Refusals are kUnauthenticated, or kUnavailable when the authority could not be
  // asked; each carries a refusal reason (see refusal_reason.h).
  virtual absl::StatusOr<ServiceAccount> Authenticate(const std::string& token,
                                                      absl::Time now) const = 0;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_AUTH_TOKEN_AUTHENTICATOR_H_
