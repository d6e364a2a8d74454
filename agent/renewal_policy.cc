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
    if (have_cert) backoff = CapRetryBackoff(policy.retry_cap, backoff, not_after, now);
    // The jitter only shortens, so the cap holds.
    return now + backoff * (0.5 + 0.5 * random01);
  }
  absl::Duration lifetime = not_after - not_before;
  absl::Time planned = not_before + lifetime * policy.renew_fraction -
                       lifetime * policy.jitter_fraction * random01;
  absl::Time with_margin = std::max(not_after - policy.min_margin,
                                    not_before + lifetime * policy.earliest_fraction);
  return std::max(std::min(planned, with_margin), now);
}

absl::Time RetryWhenReachable(const RenewalPolicy& policy, absl::Time next,
                              absl::Time now, double random01) {
  return std::min(next, now + policy.reachable_jitter * std::clamp(random01, 0.0, 1.0));
}

}  // namespace tandem::agent
