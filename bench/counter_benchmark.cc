// The cost of a data-path metric update: tandem's per-worker single-writer counter and
// histogram, against a shared atomic fetch_add (what a naive global counter costs);
// and the metric work of one whole connection without and with the istio_tcp_* peer
// metrics, in one run, interleaved:
//   build/bench/counter_benchmark
//   build/bench/counter_benchmark --benchmark_filter=Connection \
//     --benchmark_repetitions=10 --benchmark_enable_random_interleaving=true
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/spiffe_id.h"
#include "proxy/peer_metrics.h"
#include "proxy/proxy_stats.h"

namespace {

void BM_WorkerCounterAdd(benchmark::State& state) {
  static tandem::proxy::WorkerStats stats;
  for (auto _ : state) {
    tandem::proxy::WorkerStats::Add(stats.bytes_from_downstream[0], 1);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_WorkerCounterAdd);

void BM_WorkerHistogramObserve(benchmark::State& state) {
  static tandem::proxy::WorkerHistogram histogram;
  double v = 0.0001;
  for (auto _ : state) {
    histogram.Observe(v);
    v = v < 1 ? v * 1.7 : 0.0001;
  }
}
BENCHMARK(BM_WorkerHistogramObserve);

std::atomic<uint64_t> shared_counter{0};
void BM_SharedAtomicFetchAdd(benchmark::State& state) {
  for (auto _ : state) shared_counter.fetch_add(1, std::memory_order_relaxed);
}
BENCHMARK(BM_SharedAtomicFetchAdd)->Threads(1)->Threads(2);

// One connection's metric updates as Connection makes them: opened/active when it
// starts pumping, one pump's bytes, closed/active and the duration at close. With
// peer metrics (arg 1) it also resolves its peer's cell in a warm per-worker cache of
// 100 peers (cycled, as many clients would be) and bumps opened, bytes and closed.
void BM_ConnectionMetrics(benchmark::State& state) {
  using tandem::proxy::WorkerStats;
  const bool peers = state.range(0) == 1;
  static WorkerStats stats;
  static tandem::proxy::PeerLabelTable table(tandem::proxy::WorkloadLabels(), 1000);
  static tandem::proxy::PeerCache cache(&table);
  static const tandem::SpiffeId own =
      *tandem::SpiffeId::Parse("spiffe://cluster.local/ns/bench/sa/server");
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(absl::StrCat("spiffe://cluster.local/ns/bench/sa/client-", i));
  }
  size_t next = 0;
  for (auto _ : state) {
    const std::string& peer = ids[next];
    next = next + 1 == ids.size() ? 0 : next + 1;
    WorkerStats::Add(stats.opened[1][0], 1);
    WorkerStats::Add(stats.active[1][0], 1);
    tandem::proxy::PeerCell* cell = nullptr;
    if (peers) {
      cell = cache.Resolve(tandem::proxy::Direction::kInbound, tandem::proxy::Mode::kMtls,
                           tandem::proxy::ResponseFlags::kNone, 1, &own, peer, &stats);
      WorkerStats::Add(cell->opened, 1);
    }
    WorkerStats::Add(stats.bytes_from_downstream[1], 100);
    WorkerStats::Add(stats.bytes_from_upstream[1], 100);
    if (peers) {
      WorkerStats::Add(cell->received, 100);
      WorkerStats::Add(cell->sent, 100);
    }
    WorkerStats::Add(stats.closed[1][0], 1);
    WorkerStats::Add(stats.active[1][0], -1);
    stats.connection_seconds[1].Observe(0.003);
    if (peers) WorkerStats::Add(cell->closed, 1);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ConnectionMetrics)->ArgName("peer_metrics")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
