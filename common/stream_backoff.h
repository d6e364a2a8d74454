#ifndef TANDEM_COMMON_STREAM_BACKOFF_H_
#define TANDEM_COMMON_STREAM_BACKOFF_H_

#include <atomic>
#include <functional>

#include "absl/time/time.h"

namespace tandem {

// Shortens a wait before its jitter, e.g. by the validity of a certificate the stream
// renews (CapRetryBackoff); empty: no cap.
using BackoffCap = std::function<absl::Duration(absl::Duration backoff)>;

// Keeps a long-lived stream (SDS, mesh policy) open: calls `run_stream` until
// `stopping`, waiting between attempts with capped exponential backoff and full jitter
// (100 ms doubling to `max_backoff`, each wait shortened by `cap` first). A stream that
// received something resets the backoff (run_stream returns true). Waits in short
// slices so a stop stays prompt. Runs on the caller's thread.
void RunStreamWithBackoff(const std::atomic<bool>& stopping,
                          const std::function<bool()>& run_stream,
                          absl::Duration max_backoff = absl::Seconds(5),
                          const BackoffCap& cap = nullptr);

}  // namespace tandem

#endif  // TANDEM_COMMON_STREAM_BACKOFF_H_
