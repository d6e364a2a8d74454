#ifndef TANDEM_COMMON_METRICS_SHARD_H_
#define TANDEM_COMMON_METRICS_SHARD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tandem::metrics::internal {

// Spreads writers over this many cache lines per counter/histogram. Threads take
// shards round-robin, so up to kShards threads never share a line.
inline constexpr size_t kShards = 16;
inline constexpr size_t kCacheLine = 64;

// One cache line of counters; lines are never shared between shards.
struct alignas(kCacheLine) CacheLine {
  static constexpr size_t kWords = kCacheLine / sizeof(std::atomic<uint64_t>);
  std::atomic<uint64_t> words[kWords] = {};
};

// Assigns the calling thread its shard on first use (a relaxed fetch_add, once per
// thread); afterwards a thread-local read. Any thread.
inline thread_local uint32_t tls_shard = UINT32_MAX;
uint32_t AssignShard();
inline uint32_t ThreadShard() {
  uint32_t shard = tls_shard;
  if (shard == UINT32_MAX) [[unlikely]]
    shard = AssignShard();
  return shard;
}

}  // namespace tandem::metrics::internal

#endif  // TANDEM_COMMON_METRICS_SHARD_H_
