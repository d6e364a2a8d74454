// The cost of a data-path metric update: tandem's per-worker single-writer counter and
// histogram, against a shared atomic fetch_add (what a naive global counter costs).
//   build/bench/counter_benchmark
#include <atomic>

#include "benchmark/benchmark.h"
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

}  // namespace

BENCHMARK_MAIN();
