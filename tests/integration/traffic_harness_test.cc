// Checks the harness itself, so a mesh test failure means the mesh, not the harness.
#include <algorithm>

#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {
namespace {

TEST(TrafficHarnessTest, VerifiesEchoTrafficDirectly) {
  EchoServer server;
  TrafficReport report = RunEchoTraffic(server.port(), absl::Milliseconds(500), 2, 2);
  EXPECT_GT(report.short_ok, 0);
  EXPECT_EQ(report.short_failed, 0);
  EXPECT_GT(report.long_rounds_ok, 0);
  EXPECT_EQ(report.long_failed, 0);
  EXPECT_TRUE(report.errors.empty()) << report.errors.front();
  server.Stop();
}

TEST(TrafficHarnessTest, CountsFailuresWhenNothingListens) {
  ClosedPort closed;
  ASSERT_GT(closed.port(), 0);
  TrafficReport report = RunEchoTraffic(closed.port(), absl::Milliseconds(100), 1, 1);
  EXPECT_GT(report.short_failed, 0);
  EXPECT_EQ(report.long_failed, 1);
  ASSERT_FALSE(report.errors.empty());
  EXPECT_NE(std::find(report.errors.begin(), report.errors.end(),
                      "short #0: connect failed: Connection refused"),
            report.errors.end())
      << report.errors.front();
}

TEST(TrafficHarnessTest, ReadsPrometheusSamples) {
  std::string text =
      "# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n"
      "y{reason=\"expired\"} 2.5\n";
  EXPECT_EQ(MetricValue(text, "x_total"), 3);
  EXPECT_EQ(MetricValue(text, "y{reason=\"expired\"}"), 2.5);
  EXPECT_EQ(MetricValue(text, "y"), -1);
}

}  // namespace
}  // namespace tandem::testing
