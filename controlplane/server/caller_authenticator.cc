// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3).
#include "controlplane/server/caller_authenticator.h"

#include <grpcpp/security/auth_context.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/spiffe_id.h"
#include "controlplane/auth/refusal_reason.h"

namespace tandem::controlplane {

absl::StatusOr<ServiceAccount> CallerAuthenticator::Authenticate(
    const grpc::ServerContextBase* context, absl::Time now) const {
  std::string certificate_serial;
  absl::StatusOr<ServiceAccount> account = Identify(context, now, &certificate_serial);
  if (!account.ok()) {
    // A refusal of the caller is always UNAUTHENTICATED; only an unreachable
    // authority keeps its code so the caller retries.
    absl::Status status = account.status();
    if (status.code() != absl::StatusCode::kUnavailable &&
        status.code() != absl::StatusCode::kDeadlineExceeded &&
        status.code() != absl::StatusCode::kUnauthenticated) {
      return WithRefusalReason(absl::UnauthenticatedError(status.message()),
                               RefusalReasonOf(status, "internal"));
    }
    return status;
  }
  if (revocations_ == nullptr) return account;
  if (!certificate_serial.empty() &&
      revocations_->IsSerialRevoked(certificate_serial, now)) {
    return WithRefusalReason(
        absl::PermissionDeniedError(absl::StrCat("the client certificate (serial ",
                                                 certificate_serial, ") is revoked")),
        "revoked");
  }
  // An identity that makes no SPIFFE ID is refused later, by issuance.
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload(core_->trust_domain(), account->ns, account->name);
  if (id.ok() && revocations_->IsSpiffeIdRevoked(id->ToString(), now)) {
    return WithRefusalReason(
        absl::PermissionDeniedError(absl::StrCat(id->ToString(), " is revoked")),
        "revoked");
  }
  return account;
}

absl::StatusOr<ServiceAccount> CallerAuthenticator::Identify(
    const grpc::ServerContextBase* context, absl::Time now,
    std::string* certificate_serial) const {
  auto auth = context->client_metadata().find("authorization");
  if (auth != context->client_metadata().end()) {
    std::string value(auth->second.data(), auth->second.size());
    if (!absl::StartsWith(value, "Bearer ") || value.size() == 7) {
      return WithRefusalReason(
          absl::UnauthenticatedError("authorization header is not a Bearer token"),
          "malformed_header");
    }
    if (tokens_ == nullptr) {
      return WithRefusalReason(
          absl::UnauthenticatedError("this CA accepts no tokens (no token authority "
                                     "configured); renew with a client certificate"),
          "no_token_authority");
    }
    return tokens_->Authenticate(value.substr(7), now);
  }
  // No token: a workload presenting its current certificate.
  std::shared_ptr<const grpc::AuthContext> auth_context = context->auth_context();
  // The leaf, then whatever chain the TLS stack reports (for intermediates).
  std::vector<grpc::string_ref> leaf = auth_context->FindPropertyValues("x509_pem_cert");
  if (leaf.empty()) {
    return WithRefusalReason(
        absl::UnauthenticatedError("no Bearer token and no client certificate"),
        "missing_credentials");
  }
  std::string pem(leaf[0].data(), leaf[0].size());
  for (const grpc::string_ref& c :
       auth_context->FindPropertyValues("x509_pem_cert_chain")) {
    pem.append(c.data(), c.size());
  }
  return core_->AuthenticatePeer(pem, now, certificate_serial);
}

}  // namespace tandem::controlplane
