// Validates a rendered registry with Prometheus's own `promtool check metrics`, which
// parses the text format and lints names, HELP, TYPE and histogram series.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/metrics/registry.h"
#include "gtest/gtest.h"

namespace tandem::metrics {
namespace {

#ifdef TANDEM_PROMTOOL
std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
#endif

TEST(PromtoolTest, PromtoolAcceptsRenderedRegistry) {
#ifndef TANDEM_PROMTOOL
  GTEST_SKIP() << "promtool not found at configure time (Debian package prometheus)";
#else
  if (access(TANDEM_PROMTOOL, X_OK) != 0) {
    GTEST_SKIP() << TANDEM_PROMTOOL << " is not executable (Debian package prometheus)";
  }
  Registry registry;
  registry
      .GetCounter("tandem_test_connections_total", "Connections by outcome.",
                  {{"direction", "inbound"}, {"reason", "bad \"identity\"\\\n"}})
      .Inc(5);
  registry.GetCounter("tandem_test_connections_total", "Connections by outcome.",
                      {{"direction", "outbound"}, {"reason", "ok"}});
  registry.GetGauge("tandem_test_connections_active", "Open connections.").Set(3);
  registry.GetGauge("tandem_test_ratio", "A ratio.", {{"kind", "x"}}).Set(-0.125);
  Histogram& h =
      registry.GetHistogram("tandem_test_handshake_duration_seconds", "Handshake time.",
                            DefaultLatencyBuckets(), {{"direction", "inbound"}});
  for (int i = 0; i < 100; ++i) h.Observe(i * 0.0137);
  registry.GetHistogram("tandem_test_handshake_duration_seconds", "Handshake time.",
                        DefaultLatencyBuckets(), {{"direction", "outbound"}});
  registry.AddCounterFunction("tandem_test_updates_total", "Updates.",
                              {{"result", "accepted"}}, [] { return uint64_t{4}; });
  registry.AddGaugeFunction("tandem_test_expiry_timestamp_seconds", "Expiry.", {},
                            [] { return 1.8e9; });
  registry.SetInfo("tandem_test_certificate_info", "The certificate.",
                   {{"serial", "0a"}, {"spiffe_id", "spiffe://td/ns/a/sa/b"}});

  std::string dir = ::testing::TempDir();
  std::string in = dir + "/promtool_in_" + std::to_string(getpid()) + ".txt";
  std::string out = dir + "/promtool_out_" + std::to_string(getpid()) + ".txt";
  {
    std::ofstream f(in);
    f << registry.RenderPrometheus();
  }
  std::string cmd =
      std::string(TANDEM_PROMTOOL) + " check metrics < " + in + " > " + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::string report = ReadFile(out);
  std::remove(in.c_str());
  std::remove(out.c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << cmd;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << report;
  EXPECT_EQ(report, "") << report;
#endif
}

}  // namespace
}  // namespace tandem::metrics
