#ifndef TANDEM_PROXY_CONNECTION_TYPES_H_
#define TANDEM_PROXY_CONNECTION_TYPES_H_

// The basic types of a proxied connection: which way it goes and whether it is mTLS (the
// `direction` and `mode` labels of its metrics), and why it failed.
namespace tandem::proxy {

enum class Direction { kOutbound = 0, kInbound = 1 };
enum class Mode { kMtls = 0, kPlaintext = 1 };

// Why a connection was refused or failed before pumping; the `reason` label.
enum class FailReason {
  kMalformed = 0,
  kUnknownCa,
  kExpired,
  kNotYetValid,
  kBadIdentity,
  kNotAllowed,
  kPlaintextRefused,
  kTimeout,
  kNotAuthorized,
  kTlsError,
  kNoCertificate,
  kWrongServer,
  kRevoked,
  kCount
};
const char* FailReasonName(FailReason reason);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_CONNECTION_TYPES_H_
