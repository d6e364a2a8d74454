#ifndef TANDEM_CONTROLPLANE_SERVER_CALLER_AUTHENTICATOR_H_
#define TANDEM_CONTROLPLANE_SERVER_CALLER_AUTHENTICATOR_H_

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/auth/token_authenticator.h"
#include "controlplane/ca/ca_core.h"
#include "controlplane/revocation/revocation_store.h"

namespace tandem::controlplane {

// Says who a gRPC caller of tandem-ca is, the same way for every service
// (CreateCertificate, StreamPolicy): `authorization: Bearer <service-account token>`,
// or, without a token, the caller's current client certificate. Then refuses a caller
// whose identity, or whose presented certificate, is revoked.
// Immutable after construction; any gRPC thread may call Authenticate. gRPC code: the
// header names no BoringSSL type.
class CallerAuthenticator {
 public:
  // `tokens` may be null (renewals by certificate only); `revocations` may be null (no
  // revocation list). All three outlive this object.
  CallerAuthenticator(const CaCore* core, const TokenAuthenticator* tokens,
                      const RevocationStore* revocations)
      : core_(core), tokens_(tokens), revocations_(revocations) {}

  // Refusals are kUnauthenticated (bad or missing credentials), kUnavailable or
  // kDeadlineExceeded (the token authority could not be asked: retry), or
  // kPermissionDenied (revoked); each carries a refusal reason (refusal_reason.h).
  absl::StatusOr<ServiceAccount> Authenticate(const grpc::ServerContextBase* context,
                                              absl::Time now) const;

 private:
  // Who the credentials name, before the revocation check.
  absl::StatusOr<ServiceAccount> Identify(const grpc::ServerContextBase* context,
                                          absl::Time now,
                                          std::string* certificate_serial) const;

  const CaCore* core_;
  const TokenAuthenticator* tokens_;
  const RevocationStore* revocations_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_CALLER_AUTHENTICATOR_H_
