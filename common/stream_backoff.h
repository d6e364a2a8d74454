#ifndef TANDEM_COMMON_STREAM_BACKOFF_H_
#define TANDEM_COMMON_STREAM_BACKOFF_H_

#include <atomic>
#include <functional>

#include "absl/time/time.h"

namespace tandem {

// Keeps a long-lived stream (SDS, mesh policy) open: calls `run_stream` until
// `stopping`, waiting between attempts with capped exponential backoff and full jitter
// (100 ms doubling to `max_backoff`). A stream that received something resets the
// backoff (run_stream returns true). Waits in short slices so a stop stays prompt.
// Runs on the caller's thread.
void RunStreamWithBackoff(const std::atomic<bool>& stopping,
                          const std::function<bool()>& run_stream,
                          absl::Duration max_backoff = absl::Seconds(5));

}  // namespace tandem

#endif  // TANDEM_COMMON_STREAM_BACKOFF_H_
