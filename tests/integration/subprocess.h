#ifndef TANDEM_TESTS_INTEGRATION_SUBPROCESS_H_
#define TANDEM_TESTS_INTEGRATION_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tandem::testing {

// A child process started from a test: stdout+stderr go to a log file. The destructor
// kills (SIGKILL) and reaps it, and prints the log (its start and its end) when the
// running test has failed, so every failure shows the logs of the processes involved.
// The child gets SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG), so none
// outlives a killed test, and runs in a process group of its own, so a terminal's
// Ctrl-C reaches only the test. Main test thread only.
class Subprocess {
 public:
  Subprocess(std::string name, std::vector<std::string> argv, std::string log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool Start();
  bool Running();
  // Sends `sig` and waits up to `timeout` for exit; returns the exit status (as from
  // waitpid) or -1 on timeout.
  int Signal(int sig, absl::Duration timeout);
  void Kill();
  // The whole log file (earlier runs under the same path included).
  std::string Log() const;
  // The part of the log this run wrote (since Start()).
  std::string LogSinceStart() const;
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

 private:
  std::string name_;
  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
  size_t log_start_ = 0;  // size of the log file when Start() ran
};

// Waits up to `timeout` for this run of `process` to log a line containing `marker`
// followed by HOST:PORT and returns that port; 0 when the line does not come (the
// process died, or the timeout passed). E.g. marker "ACCEPT " for openssl s_server.
int WaitForLoggedPort(Subprocess& process, const std::string& marker,
                      absl::Duration timeout = absl::Seconds(20));
// The same for a tandem binary's log::Listening line for `listener` (text or JSON log
// format): servers under test bind port 0 and tests read the port back from there.
int WaitForListeningPort(Subprocess& process, const std::string& listener,
                         absl::Duration timeout = absl::Seconds(20));
// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);
// Status and body of one HTTP exchange; status 0 when there was no HTTP answer.
struct HttpResult {
  int status = 0;
  std::string body;
};
// Sends METHOD http://127.0.0.1:port/path (no body) and reads the whole answer.
HttpResult HttpCall(int port, const std::string& method, const std::string& path);
// Returns the body of GET http://127.0.0.1:port/path, or "" on any failure or non-200.
std::string HttpGet(int port, const std::string& path);
// Returns the value of an unlabelled or exactly-labelled Prometheus sample, or -1.
double MetricValue(const std::string& exposition, const std::string& sample);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_SUBPROCESS_H_
