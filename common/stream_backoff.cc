#include "common/stream_backoff.h"

#include <algorithm>
#include <random>

#include "absl/time/clock.h"

namespace tandem {

absl::Duration StreamBackoff::Next(double random01, const BackoffCap& cap) {
  absl::Duration wait = (cap ? cap(backoff_) : backoff_) *
                        (0.5 + 0.5 * std::clamp(random01, 0.0, 1.0));
  backoff_ = std::min(backoff_ * 2, max_);
  return wait;
}

void RunStreamWithBackoff(const std::atomic<bool>& stopping,
                          const std::function<bool()>& run_stream,
                          absl::Duration max_backoff, const BackoffCap& cap) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  StreamBackoff backoff(max_backoff);
  while (!stopping.load()) {
    if (run_stream()) backoff.Reset();
    if (stopping.load()) break;
    absl::Duration wait = backoff.Next(uniform(rng), cap);
    for (absl::Time end = absl::Now() + wait; absl::Now() < end && !stopping.load();) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
}

}  // namespace tandem
