#ifndef TANDEM_TANDEMCTL_PROXY_STATUS_H_
#define TANDEM_TANDEMCTL_PROXY_STATUS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::tandemctl {

// One policy stream as tandem-ca's admin endpoint shows it (GET /policy-streams,
// PolicyServer::StreamsJson): one per connected agent and its proxy.
struct ProxyStatus {
  std::string node;  // the pod name
  std::string spiffe_id;
  std::string sent_version, acked_version, nacked_version, last_nack_error;
  std::string proxy_name, proxy_version, agent_version;
  std::string cert_serial;
  absl::Time cert_not_after = absl::InfinitePast();  // InfinitePast: not reported
};

// Parses the /policy-streams JSON. Unknown fields are ignored (a newer tandem-ca);
// kInvalidArgument names what is malformed. Sorted by node, then SPIFFE ID.
absl::StatusOr<std::vector<ProxyStatus>> ParseProxyStatus(const std::string& json);

// Where a stream's policy stands: "ACKED", "NACKED", "SENT" (no answer yet) or
// "NOT SENT".
std::string PolicyState(const ProxyStatus& status);

// Returns the `tandemctl proxy-status` table: a header and one line per stream, with
// columns NAME, IDENTITY, CERT SERIAL, CERT EXPIRES (relative to `now`), AGENT,
// PROXY and POLICY (its state and version; a NACK's error after it).
std::string FormatProxyStatus(const std::vector<ProxyStatus>& streams, absl::Time now);

// Returns `text` with control characters as spaces: what proxies report (a NACK's
// error, a pod name) must neither break lines nor reach a terminal as escapes.
std::string Printable(std::string text);

// Returns "in 1m30s", "3s ago", or "-" for InfinitePast.
std::string Until(absl::Time when, absl::Time now);

}  // namespace tandem::tandemctl

#endif  // TANDEM_TANDEMCTL_PROXY_STATUS_H_
