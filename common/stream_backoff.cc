#include "common/stream_backoff.h"

#include <algorithm>
#include <random>

#include "absl/time/clock.h"

namespace tandem {

void RunStreamWithBackoff(const std::atomic<bool>& stopping,
                          const std::function<bool()>& run_stream,
                          absl::Duration max_backoff, const BackoffCap& cap) {
  constexpr absl::Duration kInitial = absl::Milliseconds(100);
  std::mt19937 rng(std::random_device{}());
  absl::Duration backoff = kInitial;
  while (!stopping.load()) {
    if (run_stream()) backoff = kInitial;
    if (stopping.load()) break;
    // The cap shortens this wait only: the backoff itself keeps growing.
    absl::Duration wait = (cap ? cap(backoff) : backoff) *
                          std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    backoff = std::min(backoff * 2, max_backoff);
    for (absl::Time end = absl::Now() + wait; absl::Now() < end && !stopping.load();) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
}

}  // namespace tandem
