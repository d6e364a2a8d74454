#ifndef TANDEM_CONTROLPLANE_AUTH_REFUSAL_REASON_H_
#define TANDEM_CONTROLPLANE_AUTH_REFUSAL_REASON_H_

#include <cstddef>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tandem::controlplane {

// The short, fixed reason a request was refused travels with the absl::Status as a
// payload, so the server can label its refusal metric without parsing messages.
// Reasons are lower_snake_case metric label values; kRefusalReasons lists every one.
inline constexpr absl::string_view kRefusalReasonPayload = "tandem.dev/refusal-reason";

inline constexpr absl::string_view kRefusalReasons[] = {
    "missing_credentials",       // no Bearer token and no client certificate
    "malformed_header",          // authorization is not "Bearer <token>"
    "malformed_token",           // not a JWS compact token, bad base64url or JSON
    "unsupported_algorithm",     // alg other than ES256/RS256
    "unknown_key",               // no configured key matches the token
    "bad_signature",             // the signature does not verify
    "expired",                   // exp is past
    "not_yet_valid",             // nbf or iat is in the future
    "wrong_audience",            // aud does not name our audience
    "wrong_issuer",              // iss is not the configured issuer
    "no_identity",               // no service account in the claims / review
    "token_review_denied",       // the API server said authenticated: false
    "token_review_unavailable",  // the API server could not be asked
    "no_token_authority",        // a token came, but the CA accepts none
    "bad_client_certificate",    // renewal certificate does not verify
    "bad_csr",                   // garbage, bad signature or wrong key type
    "invalid_identity",          // the identity makes no valid SPIFFE ID
    "revoked",                   // the identity or the presented certificate is revoked
    "internal",                  // our own failure
};

inline constexpr size_t kRefusalReasonCount = std::size(kRefusalReasons);

// Returns the index of `reason` in kRefusalReasons ("internal" when unknown), for
// arrays of per-reason counters.
inline size_t RefusalReasonIndex(absl::string_view reason) {
  for (size_t i = 0; i < kRefusalReasonCount; ++i) {
    if (kRefusalReasons[i] == reason) return i;
  }
  return RefusalReasonIndex("internal");
}

// Returns `status` carrying `reason` (which must be one of kRefusalReasons).
inline absl::Status WithRefusalReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kRefusalReasonPayload, absl::Cord(reason));
  return status;
}

// Returns the reason `status` carries, or `fallback`.
inline std::string RefusalReasonOf(const absl::Status& status,
                                   absl::string_view fallback) {
  auto reason = status.GetPayload(kRefusalReasonPayload);
  return reason ? std::string(*reason) : std::string(fallback);
}

// Returns kUnauthenticated "token refused: <why>" with `reason`.
inline absl::Status TokenRefused(absl::string_view reason, absl::string_view why) {
  return WithRefusalReason(
      absl::UnauthenticatedError(absl::StrCat("token refused: ", why)), reason);
}

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_AUTH_REFUSAL_REASON_H_
