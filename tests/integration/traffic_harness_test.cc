// Checks the harness itself, so a mesh test failure means the mesh, not the harness.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "gtest/gtest.h"
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
  // A port bound but not listening refuses connections, and stays ours meanwhile.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  TrafficReport report = RunEchoTraffic(ntohs(addr.sin_port), absl::Milliseconds(100), 1, 1);
  close(fd);
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
