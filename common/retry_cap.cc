#include "common/retry_cap.h"

#include <algorithm>

namespace tandem {

absl::Duration CapRetryBackoff(const RetryCap& cap, absl::Duration backoff,
                               absl::Time not_after, absl::Time now) {
  if (not_after == absl::InfinitePast()) return backoff;
  if (not_after > now) {
    return std::min(backoff, std::max((not_after - now) * cap.fraction_of_remaining,
                                      cap.min_while_valid));
  }
  // Expired: the capped retries before the expiry ran the failure count up (11 in the
  // last second of a 2 s certificate), and the plain backoff then slept 15-30 s past a
  // CA that was back after 3 s, the workload without a certificate all along (found
  // by the soak).
  return std::min(
      {backoff, std::max(cap.min_after_expiry, now - not_after), cap.max_after_expiry});
}

}  // namespace tandem
