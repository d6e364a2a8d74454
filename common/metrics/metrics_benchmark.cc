// Cost of a metric update on the data path (Google Benchmark; not a ctest test).
//   build/common/metrics/metrics_benchmark
// A shared relaxed fetch_add is included as the baseline a naive global counter pays.
#include <atomic>
#include <cstdint>

#include "benchmark/benchmark.h"
#include "common/metrics/registry.h"

namespace {

using tandem::metrics::Counter;
using tandem::metrics::DefaultLatencyBuckets;
using tandem::metrics::Histogram;
using tandem::metrics::Registry;

Counter& BenchCounter() {
  static Counter& c = Registry::Default().GetCounter("bench_counter_total", "Bench.");
  return c;
}

void BM_CounterInc(benchmark::State& state) {
  Counter& c = BenchCounter();
  for (auto _ : state) c.Inc();
  benchmark::DoNotOptimize(c.Value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

std::atomic<uint64_t> shared_counter{0};
void BM_SharedAtomicFetchAdd(benchmark::State& state) {
  for (auto _ : state) shared_counter.fetch_add(1, std::memory_order_relaxed);
}
BENCHMARK(BM_SharedAtomicFetchAdd)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  static Histogram& h = Registry::Default().GetHistogram(
      "bench_latency_seconds", "Bench.", DefaultLatencyBuckets());
  double v = 0.0001;
  for (auto _ : state) {
    h.Observe(v);
    v = v < 20 ? v * 1.7 : 0.0001;  // walks every bucket
  }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

void BM_RenderPrometheus(benchmark::State& state) {
  Registry registry;
  for (int i = 0; i < 50; ++i) {
    registry.GetCounter("bench_render_total", "Bench.", {{"n", std::to_string(i)}})
        .Inc(i);
  }
  for (int i = 0; i < 10; ++i) {
    registry.GetHistogram("bench_render_seconds", "Bench.", DefaultLatencyBuckets(),
                          {{"n", std::to_string(i)}});
  }
  for (auto _ : state) benchmark::DoNotOptimize(registry.RenderPrometheus());
}
BENCHMARK(BM_RenderPrometheus);

}  // namespace

BENCHMARK_MAIN();
