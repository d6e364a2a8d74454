// tandem-proxy's command line, run as the binary: the injector's per-pod knobs.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"

namespace {

struct Result {
  int exit_code = -1;
  std::string err;
};

Result RunProxy(const std::string& env_and_args) {
  const std::string err_path = ::testing::TempDir() + "/proxy_main_test.err";
  std::string command = env_and_args + " >/dev/null 2>" + err_path;
  int status = std::system(command.c_str());
  std::ifstream in(err_path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())};
}

TEST(ProxyMainTest, RefusesABadInboundModeFromTheEnvironment) {
  Result r = RunProxy(std::string("TANDEM_INBOUND_MODE=strict ") + TANDEM_PROXY_BIN);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("invalid configuration error=\"TANDEM_INBOUND_MODE must be STRICT or "
                       "PERMISSIVE\""),
            std::string::npos)
      << r.err;
}

TEST(ProxyMainTest, RefusesAPeerLabelSetLimitOutOfRange) {
  for (const char* value : {"-1", "lots", "100001"}) {
    Result r = RunProxy(std::string(TANDEM_PROXY_BIN) + " --peer-label-sets=" + value);
    EXPECT_EQ(r.exit_code, 2) << value;
    EXPECT_NE(r.err.find("invalid --peer-label-sets error=\"--peer-label-sets must be an "
                         "integer from 0 to 100000\""),
              std::string::npos)
        << r.err;
  }
}

TEST(ProxyMainTest, RefusesABadMergedMetricsSource) {
  struct Case {
    std::string env_and_args;
    std::string message;
  } cases[] = {
      {" --agent-metrics-port=agent",
       "--agent-metrics-port must be a port number, 0 to 65535"},
      {" --agent-metrics-port=70000",
       "--agent-metrics-port must be a port number, 0 to 65535"},
      {"TANDEM_APP_METRICS_PORT=x ",
       "TANDEM_APP_METRICS_PORT must be a port number, 0 to 65535"},
      {"TANDEM_APP_METRICS_PORT=9102 TANDEM_APP_METRICS_PATH='/a b' ",
       "TANDEM_APP_METRICS_PATH must start with / and hold printable ASCII, no space"},
  };
  for (const Case& c : cases) {
    std::string command = c.env_and_args[0] == ' '
                              ? std::string(TANDEM_PROXY_BIN) + c.env_and_args
                              : c.env_and_args + TANDEM_PROXY_BIN;
    Result r = RunProxy(command);
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find("invalid metrics merge error=\"" + c.message + "\""),
              std::string::npos)
        << r.err;
  }
}

TEST(ProxyMainTest, WaitReadyRefusesABadAddress) {
  Result r = RunProxy(std::string(TANDEM_PROXY_BIN) + " --wait-ready=localhost");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--wait-ready error=\"expected host:port\""), std::string::npos) << r.err;
}

TEST(ProxyMainTest, WaitReadyFailsWhenNoProxyAnswersInTime) {
  // Port 1 on loopback: nothing listens there in a test environment.
  Result r = RunProxy(std::string(TANDEM_PROXY_BIN) +
                      " --wait-ready=127.0.0.1:1 --wait-timeout=1s");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not ready after 1s (last: connect: Connection refused)"),
            std::string::npos)
      << r.err;
}

TEST(ProxyMainTest, WaitTimeoutMustBeADuration) {
  Result r = RunProxy(std::string(TANDEM_PROXY_BIN) +
                      " --wait-ready=127.0.0.1:1 --wait-timeout=soon");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("invalid --wait-timeout"), std::string::npos) << r.err;
}

}  // namespace
