#include "common/metrics/shard.h"

namespace tandem::metrics::internal {

uint32_t AssignShard() {
  static std::atomic<uint32_t> next{0};
  tls_shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return tls_shard;
}

}  // namespace tandem::metrics::internal
