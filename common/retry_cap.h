#ifndef TANDEM_COMMON_RETRY_CAP_H_
#define TANDEM_COMMON_RETRY_CAP_H_

#include "absl/time/time.h"

namespace tandem {

// How long a retry may wait while a certificate depends on it: the agent retrying its
// CA (agent/renewal_policy.h) and the proxy redialling its agent's SDS socket
// (proxy/sds_client.h) apply the same rule, so a backoff that grew while the other end
// was down cannot sleep past the expiry it is trying to prevent, nor far past it.
struct RetryCap {
  // While the certificate is valid, a retry waits at most this fraction of its
  // remaining validity, but never less than `min_while_valid`.
  double fraction_of_remaining = 0.25;
  absl::Duration min_while_valid = absl::Milliseconds(50);
  // Once it has expired, a retry waits at most as long as it has been expired (never
  // less than `min_after_expiry`), so the retries double from the expiry however many
  // failed before it, instead of sleeping a grown backoff past a peer that is back.
  absl::Duration min_after_expiry = absl::Milliseconds(200);
  // ...and never more than this: a retry that costs the other end nothing (the proxy
  // dialling its agent's local socket) need not back off from a workload that is out
  // of service.
  absl::Duration max_after_expiry = absl::InfiniteDuration();
};

// Returns `backoff` shortened by `cap` for a certificate valid until `not_after`
// (InfinitePast(): no certificate, `backoff` unchanged). Side-effect free; the caller
// applies its jitter to the result (jitter that only shortens keeps the cap).
absl::Duration CapRetryBackoff(const RetryCap& cap, absl::Duration backoff,
                               absl::Time not_after, absl::Time now);

}  // namespace tandem

#endif  // TANDEM_COMMON_RETRY_CAP_H_
