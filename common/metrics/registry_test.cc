#include "common/metrics/registry.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace tandem::metrics {
namespace {

TEST(RegistryTest, RendersGoldenTextFormat) {
  Registry registry;
  registry
      .GetCounter("tandem_test_requests_total", "Requests handled.", {{"code", "200"}})
      .Inc(3);
  registry
      .GetCounter("tandem_test_requests_total", "Requests handled.", {{"code", "404"}})
      .Inc();
  registry.GetGauge("tandem_test_ready", "1 when ready.").Set(1);
  registry.GetGauge("tandem_test_temperature", "A negative fraction.").Set(-0.25);
  Histogram& h =
      registry.GetHistogram("tandem_test_latency_seconds", "Latency.", {0.1, 1, 10});
  h.Observe(0.05);
  h.Observe(0.1);  // le is inclusive
  h.Observe(5);
  h.Observe(100);

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP tandem_test_latency_seconds Latency.\n"
            "# TYPE tandem_test_latency_seconds histogram\n"
            "tandem_test_latency_seconds_bucket{le=\"0.1\"} 2\n"
            "tandem_test_latency_seconds_bucket{le=\"1\"} 2\n"
            "tandem_test_latency_seconds_bucket{le=\"10\"} 3\n"
            "tandem_test_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "tandem_test_latency_seconds_sum 105.15\n"
            "tandem_test_latency_seconds_count 4\n"
            "# HELP tandem_test_ready 1 when ready.\n"
            "# TYPE tandem_test_ready gauge\n"
            "tandem_test_ready 1\n"
            "# HELP tandem_test_requests_total Requests handled.\n"
            "# TYPE tandem_test_requests_total counter\n"
            "tandem_test_requests_total{code=\"200\"} 3\n"
            "tandem_test_requests_total{code=\"404\"} 1\n"
            "# HELP tandem_test_temperature A negative fraction.\n"
            "# TYPE tandem_test_temperature gauge\n"
            "tandem_test_temperature -0.25\n");
}

TEST(RegistryTest, ReadsFunctionSeriesAtEachScrape) {
  Registry registry;
  uint64_t accepted = 7;
  double temperature = 1.5;
  registry.AddCounterFunction("tandem_test_updates_total", "Updates.",
                              {{"result", "accepted"}}, [&] { return accepted; });
  registry.GetCounter("tandem_test_updates_total", "Updates.", {{"result", "refused"}})
      .Inc(2);
  registry.AddGaugeFunction("tandem_test_temperature", "Degrees.", {},
                            [&] { return temperature; });
  accepted = 9;
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP tandem_test_temperature Degrees.\n"
            "# TYPE tandem_test_temperature gauge\n"
            "tandem_test_temperature 1.5\n"
            "# HELP tandem_test_updates_total Updates.\n"
            "# TYPE tandem_test_updates_total counter\n"
            "tandem_test_updates_total{result=\"accepted\"} 9\n"
            "tandem_test_updates_total{result=\"refused\"} 2\n");
}

TEST(RegistryTest, InfoFamilyKeepsOnlyTheLastLabelSet) {
  Registry registry;
  registry.ClearInfo("tandem_test_certificate_info", "The certificate.");
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP tandem_test_certificate_info The certificate.\n"
            "# TYPE tandem_test_certificate_info gauge\n");
  registry.SetInfo("tandem_test_certificate_info", "The certificate.",
                   {{"serial", "01"}, {"generation", "1"}});
  registry.SetInfo("tandem_test_certificate_info", "The certificate.",
                   {{"serial", "02"}, {"generation", "2"}});
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP tandem_test_certificate_info The certificate.\n"
            "# TYPE tandem_test_certificate_info gauge\n"
            "tandem_test_certificate_info{generation=\"2\",serial=\"02\"} 1\n");
}

TEST(RegistryDeathTest, RefusesGaugeLookupOnInfoFamily) {
  Registry registry;
  registry.SetInfo("tandem_test_info", "Info.", {{"v", "1"}});
  EXPECT_DEATH(registry.GetGauge("tandem_test_info", "Info.", {{"v", "1"}}),
               "tandem_test_info is an info family");
}

TEST(RegistryDeathTest, RefusesSecondFunctionForTheSameSeries) {
  Registry registry;
  registry.AddGaugeFunction("tandem_test_up", "Up.", {}, [] { return 1.0; });
  EXPECT_DEATH(registry.AddGaugeFunction("tandem_test_up", "Up.", {}, [] { return 0.0; }),
               "tandem_test_up has this series already");
}

TEST(RegistryTest, RendersEmptyRegistryAsEmptyText) {
  Registry registry;
  EXPECT_EQ(registry.RenderPrometheus(), "");
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry
      .GetCounter("tandem_test_total", "Help with \\ and\nnewline and \"quotes\".",
                  {{"peer", "a\\b\"c\nd"}})
      .Inc();
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP tandem_test_total Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE tandem_test_total counter\n"
            "tandem_test_total{peer=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(RegistryTest, ReturnsSameObjectForSameNameAndLabelsInAnyOrder) {
  Registry registry;
  Counter& a = registry.GetCounter("tandem_x_total", "X.", {{"a", "1"}, {"b", "2"}});
  Counter& b = registry.GetCounter("tandem_x_total", "X.", {{"b", "2"}, {"a", "1"}});
  Counter& c = registry.GetCounter("tandem_x_total", "X.", {{"a", "1"}, {"b", "3"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.Inc(2);
  b.Inc(5);
  EXPECT_EQ(a.Value(), 7u);
  EXPECT_EQ(c.Value(), 0u);
  EXPECT_NE(registry.RenderPrometheus().find("tandem_x_total{a=\"1\",b=\"2\"} 7\n"),
            std::string::npos);
}

TEST(RegistryTest, HistogramBucketsAreCumulativeWithLabelsBeforeLe) {
  Registry registry;
  Histogram& h = registry.GetHistogram("tandem_h_seconds", "H.", {1, 2, 4},
                                       {{"direction", "inbound"}});
  for (double v : {0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, -1.0}) h.Observe(v);
  Histogram::Snapshot s = h.Fold();
  EXPECT_EQ(s.bucket_counts, (std::vector<uint64_t>{3, 2, 2, 1}));
  EXPECT_EQ(s.count, 8u);
  EXPECT_DOUBLE_EQ(s.sum, 15.5);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("tandem_h_seconds_bucket{direction=\"inbound\",le=\"1\"} 3\n"
                      "tandem_h_seconds_bucket{direction=\"inbound\",le=\"2\"} 5\n"
                      "tandem_h_seconds_bucket{direction=\"inbound\",le=\"4\"} 7\n"
                      "tandem_h_seconds_bucket{direction=\"inbound\",le=\"+Inf\"} 8\n"
                      "tandem_h_seconds_sum{direction=\"inbound\"} 15.5\n"
                      "tandem_h_seconds_count{direction=\"inbound\"} 8\n"),
            std::string::npos)
      << text;
}

TEST(RegistryTest, HistogramIgnoresNanAndCountsInfinityInLastBucket) {
  Registry registry;
  Histogram& h = registry.GetHistogram("tandem_h2_seconds", "H.", {1});
  h.Observe(std::numeric_limits<double>::quiet_NaN());
  h.Observe(std::numeric_limits<double>::infinity());
  Histogram::Snapshot s = h.Fold();
  EXPECT_EQ(s.bucket_counts, (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(std::isinf(s.sum));
  EXPECT_NE(registry.RenderPrometheus().find("tandem_h2_seconds_sum +Inf\n"),
            std::string::npos);
}

TEST(RegistryTest, DropsTrailingInfBucket) {
  Registry registry;
  Histogram& h = registry.GetHistogram("tandem_h3_seconds", "H.",
                                       {1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(h.bounds(), std::vector<double>{1});
  // Same layout either way: no CHECK failure.
  EXPECT_EQ(&registry.GetHistogram("tandem_h3_seconds", "H.", {1}), &h);
}

TEST(RegistryTest, DefaultLatencyBucketsAreIncreasingSeconds) {
  std::vector<double> b = DefaultLatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_LE(b.front(), 0.001);
  EXPECT_GE(b.back(), 10);
}

TEST(RegistryTest, RunsCollectorsBeforeRendering) {
  Registry registry;
  int runs = 0;
  registry.AddCollector([&] {
    ++runs;
    // A collector may register metrics (no deadlock: it runs without the lock).
    registry.GetGauge("tandem_collected", "Set at scrape.").Set(runs);
  });
  EXPECT_NE(registry.RenderPrometheus().find("tandem_collected 1\n"), std::string::npos);
  EXPECT_NE(registry.RenderPrometheus().find("tandem_collected 2\n"), std::string::npos);
  EXPECT_EQ(runs, 2);
}

TEST(RegistryTest, GaugeAddsAndSets) {
  Registry registry;
  Gauge& g = registry.GetGauge("tandem_g", "G.");
  g.Add(2.5);
  g.Add(-1);
  EXPECT_DOUBLE_EQ(g.Value(), 1.5);
  g.Set(1e9);
  EXPECT_NE(registry.RenderPrometheus().find("tandem_g 1e+09\n"), std::string::npos);
}

TEST(RegistryTest, DefaultIsOneProcessWideRegistry) {
  EXPECT_EQ(&Registry::Default(), &Registry::Default());
}

using RegistryDeathTest = ::testing::Test;

TEST(RegistryDeathTest, DiesOnInvalidMetricName) {
  Registry registry;
  EXPECT_DEATH(registry.GetCounter("9starts_with_digit", "X."), "invalid metric name");
  EXPECT_DEATH(registry.GetCounter("has-dash", "X."), "invalid metric name");
  EXPECT_DEATH(registry.GetCounter("", "X."), "invalid metric name");
}

TEST(RegistryDeathTest, DiesOnInvalidOrReservedLabelName) {
  Registry registry;
  EXPECT_DEATH(registry.GetCounter("tandem_x_total", "X.", {{"bad-name", "v"}}),
               "invalid label name");
  EXPECT_DEATH(registry.GetCounter("tandem_x_total", "X.", {{"__reserved", "v"}}),
               "invalid label name");
  EXPECT_DEATH(registry.GetHistogram("tandem_h", "H.", {1}, {{"le", "1"}}), "reserved");
  EXPECT_DEATH(registry.GetCounter("tandem_x_total", "X.", {{"a", "1"}, {"a", "2"}}),
               "duplicate label");
}

TEST(RegistryDeathTest, DiesOnTypeHelpLabelOrBucketMismatch) {
  Registry registry;
  registry.GetCounter("tandem_x_total", "X.", {{"a", "1"}});
  registry.GetHistogram("tandem_h", "H.", {1, 2});
  EXPECT_DEATH(registry.GetGauge("tandem_x_total", "X."), "registered as counter");
  EXPECT_DEATH(registry.GetCounter("tandem_x_total", "Other.", {{"a", "1"}}),
               "registered with help");
  EXPECT_DEATH(registry.GetCounter("tandem_x_total", "X.", {{"b", "1"}}),
               "registered with labels");
  EXPECT_DEATH(registry.GetHistogram("tandem_h", "H.", {1, 3}), "other buckets");
  EXPECT_DEATH(registry.GetCounter("tandem_y_total", ""), "empty help");
}

TEST(RegistryDeathTest, DiesOnBadBuckets) {
  Registry registry;
  EXPECT_DEATH(registry.GetHistogram("tandem_h", "H.", {2, 1}), "strictly increasing");
  EXPECT_DEATH(registry.GetHistogram("tandem_h", "H.", {1, 1}), "strictly increasing");
  EXPECT_DEATH(
      registry.GetHistogram("tandem_h", "H.", {std::numeric_limits<double>::quiet_NaN()}),
      "finite");
}

}  // namespace
}  // namespace tandem::metrics
