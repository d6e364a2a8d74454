// Concurrent updates from several threads sum exactly (run under TSan too).
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/registry.h"
#include "gtest/gtest.h"

namespace tandem::metrics {
namespace {

// More threads than shards, so some share a shard and contend on one line.
constexpr int kThreads = static_cast<int>(internal::kShards) + 4;
constexpr int kIncrementsPerThread = 20000;

TEST(ConcurrencyTest, ConcurrentCounterIncrementsSumExactly) {
  Registry registry;
  Counter& counter = registry.GetCounter("tandem_conc_total", "C.");
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter, t] {
      for (int i = 0; i < kIncrementsPerThread; ++i) counter.Inc(t % 2 == 0 ? 1 : 3);
    });
  }
  // Scrapes race with the writers: they must never see a value above the final one.
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    uint64_t now = counter.Value();
    EXPECT_GE(now, last);
    last = now;
  }
  for (auto& t : threads) t.join();
  uint64_t expected = 0;
  for (int t = 0; t < kThreads; ++t)
    expected += (t % 2 == 0 ? 1 : 3) * kIncrementsPerThread;
  EXPECT_EQ(counter.Value(), expected);
}

TEST(ConcurrencyTest, ConcurrentHistogramObservationsSumExactly) {
  Registry registry;
  Histogram& h = registry.GetHistogram("tandem_conc_seconds", "H.", {1, 2});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h] {
      // 0.5 and 1.5 are exact in binary, so the sum is exact whatever the order.
      for (int i = 0; i < kIncrementsPerThread; ++i) h.Observe(i % 2 == 0 ? 0.5 : 1.5);
    });
  }
  for (int i = 0; i < 5; ++i) (void)registry.RenderPrometheus();
  for (auto& t : threads) t.join();
  Histogram::Snapshot s = h.Fold();
  const uint64_t n = static_cast<uint64_t>(kThreads) * kIncrementsPerThread;
  EXPECT_EQ(s.count, n);
  EXPECT_EQ(s.bucket_counts, (std::vector<uint64_t>{n / 2, n / 2, 0}));
  EXPECT_EQ(s.sum, static_cast<double>(n));
}

TEST(ConcurrencyTest, ConcurrentRegistrationReturnsOneObjectPerSeries) {
  Registry registry;
  constexpr int kRegistrars = 4;
  std::vector<Counter*> seen(kRegistrars);
  std::vector<std::thread> threads;
  for (int t = 0; t < kRegistrars; ++t) {
    threads.emplace_back([&registry, &seen, t] {
      for (int i = 0; i < 200; ++i) {
        Counter& c = registry.GetCounter("tandem_reg_total", "R.",
                                         {{"n", std::to_string(i % 10)}});
        c.Inc();
        if (i % 10 == 0) seen[t] = &c;
      }
    });
  }
  for (int i = 0; i < 5; ++i) (void)registry.RenderPrometheus();
  for (auto& t : threads) t.join();
  for (int t = 1; t < kRegistrars; ++t) EXPECT_EQ(seen[t], seen[0]);
  EXPECT_EQ(seen[0]->Value(), 20u * kRegistrars);
}

}  // namespace
}  // namespace tandem::metrics
