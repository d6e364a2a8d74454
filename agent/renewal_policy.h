#ifndef TANDEM_AGENT_RENEWAL_POLICY_H_
#define TANDEM_AGENT_RENEWAL_POLICY_H_

#include "absl/time/time.h"

namespace tandem::agent {

struct RenewalPolicy {
  // Renew after this fraction of the lifetime (Istio's default is 0.5).
  double renew_fraction = 0.5;
  // Spread renewals of many workloads: up to this fraction of the lifetime earlier.
  double jitter_fraction = 0.1;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
  // While the current certificate is still valid, a retry waits at most this fraction
  // of its remaining validity, but never less than `min_retry`: a backoff that grew
  // while the CA was down must not sleep past the expiry it is trying to prevent.
  double max_retry_fraction_of_remaining = 0.25;
  absl::Duration min_retry = absl::Milliseconds(50);
};

// Returns when to next ask the CA for a certificate. Side-effect free: the caller passes
// the clock and a uniform random number in [0, 1).
//  - With no certificate (not_after == InfinitePast()) or after `failures` consecutive
//    failed attempts: exponential backoff from `now` (initial * 2^(failures-1), capped),
//    with full jitter between half and all of it; while a certificate is still valid,
//    never more than max_retry_fraction_of_remaining of its remaining validity
//    (floored at min_retry) from `now`; once it has expired, never more than the time
//    since its expiry (floored at initial_backoff), so the retries double from the
//    expiry however many failed before it.
//  - Otherwise: not_before + renew_fraction * lifetime, minus up to jitter_fraction *
//    lifetime; never before `now`.
absl::Time NextRenewal(const RenewalPolicy& policy, absl::Time not_before,
                       absl::Time not_after, absl::Time now, int failures,
                       double random01);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_RENEWAL_POLICY_H_
