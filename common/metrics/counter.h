#ifndef TANDEM_COMMON_METRICS_COUNTER_H_
#define TANDEM_COMMON_METRICS_COUNTER_H_

#include <atomic>
#include <cstdint>

#include "common/metrics/shard.h"

namespace tandem::metrics {

// A monotonically increasing count (Prometheus "counter").
//
// Threading: any thread may call any method. Inc() takes no lock and allocates nothing:
// it is one relaxed fetch_add on the calling thread's own cache line (one of
// internal::kShards), so data-path threads do not bounce a shared line. Value() folds
// the shards; it is for scrapes and tests, not the hot path.
//
// Obtain counters from Registry::GetCounter(); the registry owns them for its lifetime.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `n`. Any thread; lock-free, allocation-free.
  void Inc(uint64_t n = 1) {
    shards_[internal::ThreadShard()].words[0].fetch_add(n, std::memory_order_relaxed);
  }

  // Returns the sum over all shards. Any thread. Concurrent Inc()s may or may not be
  // included, but no increment is ever lost or counted twice.
  uint64_t Value() const {
    uint64_t sum = 0;
    for (const auto& shard : shards_)
      sum += shard.words[0].load(std::memory_order_relaxed);
    return sum;
  }

 private:
  internal::CacheLine shards_[internal::kShards];
};

}  // namespace tandem::metrics

#endif  // TANDEM_COMMON_METRICS_COUNTER_H_
