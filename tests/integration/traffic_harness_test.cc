// Checks the harness itself, so a mesh test failure means the mesh, not the harness.
#include <algorithm>

#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/tcp_forwarder.h"
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

TEST(TcpForwarderTest, RelaysToTheTargetOfTheMomentAndClosesWithoutOne) {
  TcpForwarder forwarder;
  TrafficReport none = RunEchoTraffic(forwarder.port(), absl::Milliseconds(50), 1, 0);
  EXPECT_EQ(none.short_ok, 0) << "no target: connections are closed at once";
  EXPECT_GT(none.short_failed, 0);
  EchoServer first, second;
  forwarder.set_target_port(first.port());
  TrafficReport to_first = RunEchoTraffic(forwarder.port(), absl::Milliseconds(100), 1, 1);
  EXPECT_EQ(to_first.short_failed + to_first.long_failed, 0);
  EXPECT_GT(to_first.short_ok, 0);
  // A restarted server on a new port: new connections go there.
  forwarder.set_target_port(second.port());
  TrafficReport to_second = RunEchoTraffic(forwarder.port(), absl::Milliseconds(100), 1, 0);
  EXPECT_EQ(to_second.short_failed, 0);
  EXPECT_EQ(second.connections(), to_second.short_ok);
  forwarder.Stop();
  first.Stop();
  second.Stop();
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
