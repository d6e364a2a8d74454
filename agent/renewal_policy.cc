#include "agent/renewal_policy.h"

#include <algorithm>
#include <cmath>

namespace tandem::agent {

absl::Time NextRenewal(const RenewalPolicy& policy, absl::Time not_before,
                       absl::Time not_after, absl::Time now, int failures,
                       double random01) {
  random01 = std::clamp(random01, 0.0, 1.0);
  const bool have_cert = not_after != absl::InfinitePast() && not_after > not_before;
  if (!have_cert || failures > 0) {
    absl::Duration backoff = policy.initial_backoff;
    for (int i = 1; i < failures && backoff < policy.max_backoff; ++i) backoff *= 2;
    backoff = std::min(backoff, policy.max_backoff);
    if (have_cert && not_after <= now) {
      // Expired: back off from the expiry, not from the failures before it. The capped
      // retries below run the count up (11 in the last second of a 2 s certificate),
      // and the plain backoff then slept 15-30 s past a CA that was back after 3 s,
      // the workload without a certificate all along (found by the soak).
      backoff = std::min(backoff, std::max(policy.initial_backoff, now - not_after));
    }
    absl::Time next = now + backoff * (0.5 + 0.5 * random01);
    if (have_cert && not_after > now) {
      absl::Duration cap = std::max(
          (not_after - now) * policy.max_retry_fraction_of_remaining, policy.min_retry);
      next = std::min(next, now + cap);
    }
    return next;
  }
  absl::Duration lifetime = not_after - not_before;
  absl::Time planned = not_before + lifetime * policy.renew_fraction -
                       lifetime * policy.jitter_fraction * random01;
  return std::max(planned, now);
}

}  // namespace tandem::agent
