#ifndef TANDEM_COMMON_LOG_RATE_LIMITER_H_
#define TANDEM_COMMON_LOG_RATE_LIMITER_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::log {

// A token bucket for log lines a peer can trigger (handshake failures, refusals), so a
// hostile peer cannot flood the log: up to `burst` lines at once, refilled at `burst`
// per `period`. Counts what it suppressed so the next line that passes can say so.
//
// Threading: any thread; one short mutex hold per call (error paths, not per byte).
class RateLimiter {
 public:
  using Clock = std::function<absl::Time()>;

  // `clock` defaults to absl::Now (tests pass a fake one).
  RateLimiter(int burst, absl::Duration period, Clock clock = nullptr);

  // Returns true if a line may be written now. When it returns true and
  // `suppressed_before` is not null, stores how many calls were refused since the last
  // one that passed.
  bool Allow(uint64_t* suppressed_before = nullptr);

 private:
  const double burst_;
  const double tokens_per_second_;
  const Clock clock_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_);
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::log

#endif  // TANDEM_COMMON_LOG_RATE_LIMITER_H_
