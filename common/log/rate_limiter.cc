#include "common/log/rate_limiter.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace tandem::log {

RateLimiter::RateLimiter(int burst, absl::Duration period, Clock clock)
    : burst_(std::max(1, burst)),
      // A non-positive period means "no limit": the bucket refills instantly.
      tokens_per_second_(
          period > absl::ZeroDuration() ? burst_ / absl::ToDoubleSeconds(period) : 0),
      clock_(clock ? std::move(clock) : Clock([] { return absl::Now(); })),
      tokens_(burst_),
      last_(clock_()) {}

bool RateLimiter::Allow(uint64_t* suppressed_before) {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_();
  if (tokens_per_second_ == 0) {
    tokens_ = burst_;
  } else if (now > last_) {  // a clock stepping back refills nothing
    tokens_ = std::min(burst_,
                       tokens_ + absl::ToDoubleSeconds(now - last_) * tokens_per_second_);
  }
  last_ = std::max(last_, now);
  if (tokens_ < 1) {
    ++suppressed_;
    return false;
  }
  tokens_ -= 1;
  if (suppressed_before != nullptr) *suppressed_before = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace tandem::log
