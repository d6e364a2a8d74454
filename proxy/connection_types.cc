#include "proxy/connection_types.h"

namespace tandem::proxy {

const char* FailReasonName(FailReason reason) {
  static const char* kNames[] = {
      "malformed",      "unknown_ca",        "expired", "not_yet_valid",  "bad_identity",
      "not_allowed",    "plaintext_refused", "timeout", "not_authorized", "tls_error",
      "no_certificate", "wrong_server",      "revoked"};
  return kNames[static_cast<int>(reason)];
}

}  // namespace tandem::proxy
