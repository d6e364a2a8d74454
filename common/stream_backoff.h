#ifndef TANDEM_COMMON_STREAM_BACKOFF_H_
#define TANDEM_COMMON_STREAM_BACKOFF_H_

#include <atomic>
#include <functional>

#include "absl/time/time.h"

namespace tandem {

// Shortens a wait before its jitter, e.g. by the validity of a certificate the stream
// renews (CapRetryBackoff); empty: no cap.
using BackoffCap = std::function<absl::Duration(absl::Duration backoff)>;

// The reconnect schedule of a long-lived stream (SDS, mesh policy): capped exponential
// backoff (100 ms doubling to `max`) with full jitter between half and all of it, each
// wait shortened by `cap` first (the backoff itself keeps growing). A stream that
// received something starts again from 100 ms (Reset). Side-effect free but for its
// own state: the caller passes a uniform random number in [0, 1). One object per
// stream; not thread-safe. bench/ca_load drives 10,000 of them.
class StreamBackoff {
 public:
  static constexpr absl::Duration kInitial = absl::Milliseconds(100);
  explicit StreamBackoff(absl::Duration max = absl::Seconds(5)) : max_(max) {}

  // Returns how long to wait before the next attempt, and doubles the backoff.
  absl::Duration Next(double random01, const BackoffCap& cap = nullptr);
  void Reset() { backoff_ = kInitial; }

 private:
  absl::Duration max_;
  absl::Duration backoff_ = kInitial;
};

// Keeps a long-lived stream open: calls `run_stream` until `stopping`, waiting between
// attempts as StreamBackoff says (with `cap`); `run_stream` returns true when its
// stream received something (which resets the backoff). Waits in short slices so a
// stop stays prompt. Runs on the caller's thread.
void RunStreamWithBackoff(const std::atomic<bool>& stopping,
                          const std::function<bool()>& run_stream,
                          absl::Duration max_backoff = absl::Seconds(5),
                          const BackoffCap& cap = nullptr);

}  // namespace tandem

#endif  // TANDEM_COMMON_STREAM_BACKOFF_H_
