#ifndef TANDEM_COMMON_METRICS_HISTOGRAM_H_
#define TANDEM_COMMON_METRICS_HISTOGRAM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "common/metrics/shard.h"

namespace tandem::metrics {

// A distribution over fixed buckets (Prometheus "histogram"); +Inf is implied.
//
// Threading: any thread may call any method. Observe() takes no lock and allocates
// nothing: it finds the bucket by binary search over the bounds and bumps a relaxed
// atomic in the calling thread's shard (one of internal::kShards, each on cache lines
// of its own); the shard's sum is a CAS on the double's bits, uncontended in practice.
// Snapshot() folds the shards at scrape time.
//
// Obtain histograms from Registry::GetHistogram(), which validates the bounds.
class Histogram {
 public:
  // Folded state: counts per bucket (not cumulative; the last one is +Inf), the sum of
  // all observations, and their number.
  struct Snapshot {
    std::vector<uint64_t> bucket_counts;
    double sum = 0;
    uint64_t count = 0;
  };

  // `bounds`: finite, strictly increasing upper bounds (the registry checks this).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records one value: it lands in the first bucket whose bound is >= v (Prometheus
  // `le`). NaN is ignored so one bad value cannot poison the sum. Any thread.
  void Observe(double v);

  // Folds all shards. Any thread. The count is the sum of bucket counts, so _count
  // always equals the +Inf bucket; the sum may lag a racing Observe() by one value.
  Snapshot Fold() const;

  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::atomic<uint64_t>& Word(size_t shard, size_t index) const {
    return lines_[shard * lines_per_shard_ + index / internal::CacheLine::kWords]
        .words[index % internal::CacheLine::kWords];
  }

  const std::vector<double> bounds_;
  // Per shard: bounds_.size() + 1 bucket counts, then the sum's bits.
  const size_t lines_per_shard_;
  const std::unique_ptr<internal::CacheLine[]> lines_;
};

}  // namespace tandem::metrics

#endif  // TANDEM_COMMON_METRICS_HISTOGRAM_H_
