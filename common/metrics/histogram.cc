#include "common/metrics/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

namespace tandem::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      // bucket counts (bounds + the +Inf bucket) and the sum, rounded up to lines
      lines_per_shard_((bounds_.size() + 2 + internal::CacheLine::kWords - 1) /
                       internal::CacheLine::kWords),
      lines_(new internal::CacheLine[internal::kShards * lines_per_shard_]()) {}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  size_t shard = internal::ThreadShard();
  Word(shard, bucket).fetch_add(1, std::memory_order_relaxed);
  std::atomic<uint64_t>& sum = Word(shard, bounds_.size() + 1);
  uint64_t old_bits = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(
      old_bits, std::bit_cast<uint64_t>(std::bit_cast<double>(old_bits) + v),
      std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::Fold() const {
  Snapshot snapshot;
  snapshot.bucket_counts.assign(bounds_.size() + 1, 0);
  for (size_t shard = 0; shard < internal::kShards; ++shard) {
    for (size_t b = 0; b <= bounds_.size(); ++b) {
      snapshot.bucket_counts[b] += Word(shard, b).load(std::memory_order_relaxed);
    }
    snapshot.sum += std::bit_cast<double>(
        Word(shard, bounds_.size() + 1).load(std::memory_order_relaxed));
  }
  for (uint64_t c : snapshot.bucket_counts) snapshot.count += c;
  return snapshot;
}

}  // namespace tandem::metrics
