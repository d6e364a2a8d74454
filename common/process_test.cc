#include "common/process.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "gtest/gtest.h"

namespace tandem {
namespace {

// In a child, so the test process keeps its own settings: the child lowers its soft
// limit, calls PrepareProcess, and exits 0 only if the soft limit is back at the hard
// one and SIGPIPE is ignored.
TEST(PrepareProcessTest, RaisesTheSoftOpenFileLimitToTheHardOneAndIgnoresSigpipe) {
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_max < 64) GTEST_SKIP() << "hard limit too low to lower the soft one";
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    rlimit low = files;
    low.rlim_cur = 32;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) _exit(10);
    PrepareProcess();
    rlimit after{};
    if (getrlimit(RLIMIT_NOFILE, &after) != 0) _exit(11);
    if (after.rlim_cur != files.rlim_max) _exit(12);
    struct sigaction pipe_action {};
    if (sigaction(SIGPIPE, nullptr, &pipe_action) != 0) _exit(13);
    _exit(pipe_action.sa_handler == SIG_IGN ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10: setrlimit failed, 11: getrlimit failed, 12: soft limit not raised, "
         "13: sigaction failed, 14: SIGPIPE not ignored";
}

}  // namespace
}  // namespace tandem
