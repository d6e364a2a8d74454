#ifndef TANDEM_TESTS_INTEGRATION_SUBPROCESS_H_
#define TANDEM_TESTS_INTEGRATION_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tandem::testing {

// A child process started from a test: stdout+stderr go to a log file that the test
// prints on failure. The destructor kills (SIGKILL) and reaps it. Main test thread only.
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
  std::string Log() const;
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

 private:
  std::string name_;
  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// Returns a TCP port on 127.0.0.1 that was free a moment ago.
int PickUnusedPort();
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
