// tandem-agent's command line: a bad flag (or TANDEM_APP_PROBES) is refused, naming
// what is wrong, with exit status 2 before anything is read or started; --help prints
// the usage; --app-health answers the app's probes.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/http/http_server.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"

namespace tandem::agent {
namespace {

struct AgentExit {
  int exit_code = -1;  // -1: killed or still running
  std::string output;
};

class AgentMainTest : public ::testing::Test {
 protected:
  // Runs tandem-agent with `flags` after flags that keep it off shared paths: its own
  // socket, no metrics listener, and a CA root that does not exist (so an agent that
  // accepted every flag still stops, at --ca-root).
  // `app_probes`, when not empty, is the agent's TANDEM_APP_PROBES.
  AgentExit RunAgent(const std::vector<std::string>& flags,
                     const std::string& app_probes = "") {
    std::vector<std::string> argv = Command(flags, app_probes);
    argv.push_back("--ca-root=" + dir_ + "/absent.pem");
    testing::Subprocess agent("tandem-agent", argv, dir_ + "/agent.log");
    AgentExit run;
    if (!agent.Start()) return run;
    int status = agent.Signal(0, absl::Seconds(20));  // waits for the exit
    if (status != -1 && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    run.output = agent.Log();
    return run;
  }

  std::vector<std::string> Command(const std::vector<std::string>& flags,
                                   const std::string& app_probes) {
    std::vector<std::string> argv;
    if (!app_probes.empty()) argv = {"/usr/bin/env", "TANDEM_APP_PROBES=" + app_probes};
    argv.insert(argv.end(),
                {TANDEM_AGENT_BIN, "--sds-socket=" + dir_ + "/sds.sock", "--metrics="});
    argv.insert(argv.end(), flags.begin(), flags.end());
    return argv;
  }

  tandem::testing::TempDir temp_{"tandem-agent-main-test"};
  std::string dir_ = temp_.path();
};

TEST_F(AgentMainTest, RefusesBadFlagsNamingThem) {
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--ca-adress=127.0.0.1:15012"}, "unknown flag --ca-adress"},
           {{"ca-address"}, "unexpected argument \"ca-address\""},
           {{"--validity=500ms"},
            "--validity: \"500ms\" is not a duration of at least 1s"},
           {{"--validity=soon"}, "--validity: \"soon\" is not a duration"},
           {{"--renew-fraction=1"}, "--renew-fraction: must be between 0 and 1"},
           {{"--renew-fraction=half"}, "--renew-fraction: must be between 0 and 1"},
           {{"--proxy-uid=-1"}, "--proxy-uid: not a uid"},
           {{"--policy-relay=yes"}, "--policy-relay: true or false"},
           {{"--log-level=loud"}, "--log-level:"},
           {{"--app-health=15020"},
            "--app-health: \"15020\": expected host:port or [v6]:port"},
           {{}, "--ca-root:"},  // every flag fine: the absent root file is next
       }) {
    AgentExit run = RunAgent(c.flags);
    std::string what = c.flags.empty() ? "(no extra flag)" : c.flags[0];
    EXPECT_EQ(run.exit_code, 2) << what << "\n" << run.output;
    EXPECT_NE(run.output.find(c.says), std::string::npos)
        << what << " should say " << c.says << "\n"
        << run.output;
  }
}

TEST_F(AgentMainTest, RefusesAppProbesItCannotServe) {
  struct Case {
    std::string app_probes;
    std::vector<std::string> flags;
    std::string says;
  };
  const std::string tcp = R"({"/app-health/web/livez": {"tcpSocket": {"port": 8080}}})";
  for (const Case& c : std::vector<Case>{
           {R"({"/app-health/web/readyz": {"tcpSocket": {"port": 0}}})",
            {"--app-health=127.0.0.1:0"},
            "TANDEM_APP_PROBES: \"/app-health/web/readyz\": tcpSocket.port: must be an "
            "integer 1..65535"},
           {R"({"/app-health/web/readyz": {"exec": {"command": ["true"]}}})",
            {"--app-health=127.0.0.1:0"},
            "TANDEM_APP_PROBES: \"/app-health/web/readyz\": exec: unknown field"},
           {R"({"/healthz": {"tcpSocket": {"port": 1}}})",
            {"--app-health=127.0.0.1:0"},
            "TANDEM_APP_PROBES: \"/healthz\": not a path "
            "/app-health/<container>/<livez|readyz|startupz>"},
           {"probes please",
            {"--app-health=127.0.0.1:0"},
            "TANDEM_APP_PROBES: not JSON: parse error at line 1, column 1: syntax error "
            "while "
            "parsing value - invalid literal"},
           {tcp,
            {},
            "TANDEM_APP_PROBES names 1 probes but --app-health is off: nothing would "
            "answer them"},
       }) {
    AgentExit run = RunAgent(c.flags, c.app_probes);
    EXPECT_EQ(run.exit_code, 2) << c.app_probes << "\n" << run.output;
    EXPECT_NE(run.output.find(c.says), std::string::npos)
        << c.app_probes << " should say " << c.says << "\n"
        << run.output;
  }
}

TEST_F(AgentMainTest, AnswersTheAppsProbesOnAppHealth) {
  // The app: one path that is fine, one that fails.
  absl::StatusOr<std::unique_ptr<http::HttpServer>> app = http::HttpServer::Create({});
  ASSERT_TRUE(app.ok()) << app.status();
  (*app)->Handle("/ready", [](const http::HttpRequest&) {
    return http::HttpResponse{200, "text/plain", "ready\n"};
  });
  (*app)->Handle("/live", [](const http::HttpRequest&) {
    return http::HttpResponse{500, "text/plain", "wedged\n"};
  });
  ASSERT_TRUE((*app)->Start().ok());
  std::string probes = absl::StrCat(
      R"({"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": )",
      (*app)->port(), R"(}, "timeoutSeconds": 1},
          "/app-health/web/livez": {"httpGet": {"path": "/live", "port": )",
      (*app)->port(), "}}}");

  // A CA that is never reached: app health does not wait for a certificate.
  std::ofstream(dir_ + "/ca-root.pem") << "not checked before use\n";
  std::vector<std::string> argv =
      Command({"--app-health=127.0.0.1:0", "--ca-root=" + dir_ + "/ca-root.pem",
               "--ca-address=unix:" + dir_ + "/no-ca.sock", "--policy-relay=false",
               "--token-file=" + dir_ + "/absent-token"},
              probes);
  testing::Subprocess agent("tandem-agent", argv, dir_ + "/agent.log");
  ASSERT_TRUE(agent.Start());
  int port = testing::WaitForListeningPort(agent, "app_health");
  ASSERT_GT(port, 0) << agent.Log();

  testing::HttpResult ready = testing::HttpCall(port, "GET", "/app-health/web/readyz");
  EXPECT_EQ(ready.status, 200) << agent.Log();
  EXPECT_EQ(ready.body, "ok\n");
  testing::HttpResult live = testing::HttpCall(port, "GET", "/app-health/web/livez");
  EXPECT_EQ(live.status, 503) << agent.Log();
  EXPECT_EQ(live.body, "http_status: HTTP 500\n");
  EXPECT_EQ(testing::HttpCall(port, "GET", "/app-health/web/startupz").status, 404);

  int status = agent.Signal(SIGTERM, absl::Seconds(20));
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << agent.Log();
}

TEST_F(AgentMainTest, HelpPrintsTheUsageAndExitsZero) {
  AgentExit run = RunAgent({"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("usage: tandem-agent"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--renew-fraction"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace tandem::agent
