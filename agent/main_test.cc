// tandem-agent's command line: a bad flag is refused, naming what is wrong, with exit
// status 2 before anything is read or started; --help prints the usage.
#include <stdlib.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
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
  AgentExit RunAgent(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {TANDEM_AGENT_BIN,
                                     "--sds-socket=" + dir_ + "/sds.sock",
                                     "--metrics=", "--ca-root=" + dir_ + "/absent.pem"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    testing::Subprocess agent("tandem-agent", argv, dir_ + "/agent.log");
    AgentExit run;
    if (!agent.Start()) return run;
    int status = agent.Signal(0, absl::Seconds(20));  // waits for the exit
    if (status != -1 && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    run.output = agent.Log();
    return run;
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

TEST_F(AgentMainTest, HelpPrintsTheUsageAndExitsZero) {
  AgentExit run = RunAgent({"--help"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("usage: tandem-agent"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--renew-fraction"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace tandem::agent
