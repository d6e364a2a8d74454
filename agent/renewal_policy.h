#ifndef TANDEM_AGENT_RENEWAL_POLICY_H_
#define TANDEM_AGENT_RENEWAL_POLICY_H_

#include "absl/time/time.h"
#include "common/retry_cap.h"

namespace tandem::agent {

struct RenewalPolicy {
  // Renew after this fraction of the lifetime (Istio's default is 0.5).
  double renew_fraction = 0.5;
  // Spread renewals of many workloads: up to this fraction of the lifetime earlier.
  double jitter_fraction = 0.1;
  // A renewal is due no later than this long before the expiry, so a CA round trip
  // and the push to the proxy fit in what is left even on a loaded machine; only short
  // certificates feel it. notAfter is whole seconds, so a 2 s certificate lives 1-2 s,
  // and at half of that a renewal had as little as 0.45 s (a soak saw a CA call take
  // 0.61 s and the certificate run out first).
  absl::Duration min_margin = absl::Seconds(1);
  // ...but the margin never brings a renewal before this fraction of the lifetime, so
  // a certificate that lives less than twice the margin does not renew in a storm.
  double earliest_fraction = 0.25;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
  // While the current certificate is valid, a retry waits at most a quarter of its
  // remaining validity (floor 50 ms); once it has expired, at most as long as it has
  // been expired (floor 200 ms). The same rule as the proxy's SDS redials.
  RetryCap retry_cap;
  // A retry waiting out its backoff after the CA was unreachable goes within this long
  // once the CA answers again (RetryWhenReachable), spread uniformly: after a CA
  // restart a fleet's streams come back together, and their renewals need not all
  // land in the same instant, nor wait the 30 s a grown backoff would.
  absl::Duration reachable_jitter = absl::Seconds(1);
};

// Returns when to next ask the CA for a certificate. Side-effect free: the caller passes
// the clock and a uniform random number in [0, 1).
//  - With no certificate (not_after == InfinitePast()) or after `failures` consecutive
//    failed attempts: exponential backoff from `now` (initial * 2^(failures-1), capped
//    at max_backoff), shortened by `retry_cap` for the certificate held (CapRetryBackoff:
//    a quarter of its remaining validity, or the time since its expiry), then jittered
//    between half and all of it.
//  - Otherwise: not_before + renew_fraction * lifetime, minus up to jitter_fraction *
//    lifetime; moved earlier to not_after - min_margin if that is sooner, but not by
//    the margin to before not_before + earliest_fraction * lifetime; never before
//    `now`.
absl::Time NextRenewal(const RenewalPolicy& policy, absl::Time not_before,
                       absl::Time not_after, absl::Time now, int failures,
                       double random01);

// Returns when to retry a renewal that failed because the CA was unreachable, now that
// it answered again: `now` plus up to reachable_jitter (random01 * reachable_jitter),
// but never later than `next`, the time NextRenewal gave (so the RetryCap still
// holds). Side-effect free.
absl::Time RetryWhenReachable(const RenewalPolicy& policy, absl::Time next,
                              absl::Time now, double random01);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_RENEWAL_POLICY_H_
