#ifndef TANDEM_TANDEMCTL_TLS_PROBE_H_
#define TANDEM_TANDEMCTL_TLS_PROBE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/certificate.h"

namespace tandem::tandemctl {

// What a TLS server showed in one handshake.
struct TlsProbeResult {
  std::vector<pki::Certificate> chain;  // leaf first, as the server sent it
  std::string alpn;                     // the protocol it selected; empty: none
};

// Connects to `address` ("host:port", "[::1]:port"), completes a TLS handshake offering
// `alpn` and closes. The server's chain is returned unverified: the caller verifies it
// against the roots in question, so a mismatch can be named rather than only refused.
// kUnavailable names the step that failed (resolve, connect, handshake). Blocking; any
// thread.
absl::StatusOr<TlsProbeResult> ProbeTls(const std::string& address,
                                        const std::string& alpn, absl::Duration timeout);

}  // namespace tandem::tandemctl

#endif  // TANDEM_TANDEMCTL_TLS_PROBE_H_
