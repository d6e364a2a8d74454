#include "tests/integration/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tandem::testing {

Subprocess::Subprocess(std::string name, std::vector<std::string> argv,
                       std::string log_path)
    : name_(std::move(name)), argv_(std::move(argv)), log_path_(std::move(log_path)) {}

namespace {

// The start and the end of a process log: how it came up, and how it ended.
std::string LogExcerpt(const std::string& log) {
  constexpr size_t kHalf = 4000;
  if (log.size() <= 2 * kHalf) return log;
  return absl::StrCat(log.substr(0, kHalf), "\n[...]\n", log.substr(log.size() - kHalf));
}

}  // namespace

Subprocess::~Subprocess() {
  Kill();
  if (::testing::Test::HasFailure()) {
    std::cerr << "--- log of " << name_ << " (" << log_path_ << ") ---\n"
              << LogExcerpt(Log()) << "--- end of the log of " << name_ << " ---\n";
  }
}

bool Subprocess::Start() {
  std::error_code ignored;
  uintmax_t size = std::filesystem::file_size(log_path_, ignored);
  log_start_ = size == static_cast<uintmax_t>(-1) ? 0 : size;
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return false;
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Dies with the test (a crash, a ctest timeout, a second Ctrl-C in a soak run),
    // and keeps out of the terminal's process group so a Ctrl-C reaches the test alone,
    // which then ends its children itself.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log_fd);
  return pid_ > 0;
}

bool Subprocess::Running() {
  if (pid_ <= 0) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int Subprocess::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

void Subprocess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string Subprocess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Subprocess::LogSinceStart() const {
  std::string log = Log();
  return log.size() > log_start_ ? log.substr(log_start_) : "";
}

namespace {

// The port of the first "<marker>HOST:PORT" in `log`, the address ending at a space,
// quote or line end; 0 if there is none (yet).
int LoggedPort(const std::string& log, const std::string& marker) {
  size_t at = log.find(marker);
  if (at == std::string::npos) return 0;
  size_t start = at + marker.size();
  size_t end = log.find_first_of(" \"\n", start);
  if (end == std::string::npos) return 0;  // the line is still being written
  std::string address = log.substr(start, end - start);
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return 0;
  }
  return port;
}

}  // namespace

int WaitForLoggedPort(Subprocess& process, const std::string& marker,
                      absl::Duration timeout) {
  int port = 0;
  WaitFor(
      [&] {
        // A process that exited may still have logged the line before dying.
        bool running = process.Running();
        port = LoggedPort(process.LogSinceStart(), marker);
        return port != 0 || !running;
      },
      timeout);
  return port;
}

int WaitForListeningPort(Subprocess& process, const std::string& listener,
                         absl::Duration timeout) {
  const std::string text = "listening listener=" + listener + " address=";
  const std::string json = "\"listener\":\"" + listener + "\",\"address\":\"";
  int port = 0;
  WaitFor(
      [&] {
        bool running = process.Running();
        std::string log = process.LogSinceStart();
        port = LoggedPort(log, text);
        if (port == 0) port = LoggedPort(log, json);
        return port != 0 || !running;
      },
      timeout);
  return port;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

HttpResult HttpCall(int port, const std::string& method, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = method + " " + path +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n";
    if (write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buf[16384];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
    }
  }
  close(fd);
  HttpResult result;
  size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos ||
      response.size() < 12 || !absl::SimpleAtoi(response.substr(9, 3), &result.status)) {
    return HttpResult{};
  }
  result.body = response.substr(body + 4);
  return result;
}

std::string HttpGet(int port, const std::string& path) {
  HttpResult result = HttpCall(port, "GET", path);
  return result.status == 200 ? result.body : "";
}

double MetricValue(const std::string& exposition, const std::string& sample) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.size() <= sample.size() || line.substr(0, sample.size()) != sample) continue;
    if (line[sample.size()] != ' ') continue;
    double value;
    if (absl::SimpleAtod(line.substr(sample.size() + 1), &value)) return value;
  }
  return -1;
}

}  // namespace tandem::testing
