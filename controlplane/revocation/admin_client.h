#ifndef TANDEM_CONTROLPLANE_REVOCATION_ADMIN_CLIENT_H_
#define TANDEM_CONTROLPLANE_REVOCATION_ADMIN_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::controlplane {

// The `tandem-ca revoke` side of the revocation admin endpoint (revocation_admin.h):
// one plain HTTP/1.1 request to a loopback address, nothing else (the endpoint has no
// TLS, so the client refuses to send revocations over a network). Blocking; any
// thread. The header names no BoringSSL type.
class AdminClient {
 public:
  struct Reply {
    int status = 0;
    std::string body;
  };
  // `address` as for ParseLoopbackAddress. Gives up after `timeout`.
  static absl::StatusOr<Reply> Call(const std::string& address, const std::string& method,
                                    const std::string& path, const std::string& body,
                                    absl::Duration timeout = absl::Seconds(10));

  // Returns the POST /revoke body for the certificate in `pem` (its serial and
  // not-after), or for a serial/not-after or a SPIFFE ID, with `reason`.
  static absl::StatusOr<std::string> RevokeCertificateBody(const std::string& pem,
                                                           const std::string& reason);
  static std::string RevokeSerialBody(const std::string& serial_hex,
                                      const std::string& not_after_rfc3339,
                                      const std::string& reason);
  static std::string RevokeSpiffeIdBody(const std::string& spiffe_id,
                                        const std::string& reason);
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_ADMIN_CLIENT_H_
