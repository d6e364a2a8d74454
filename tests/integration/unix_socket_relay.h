#ifndef TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_RELAY_H_
#define TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_RELAY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace tandem::testing {

// A relay between a Unix socket client (a proxy's SDS client) and a Unix socket server
// (the agent's SDS socket), so a test can break the stream between them without
// killing either: Sever() closes every relayed connection, and while blocked, new ones
// are accepted and closed at once (the client sees its server as down). Each accepted
// connection dials `target` anew, so a restarted server is reached.
//
// Threads: one of its own, which accepts and pumps every connection; the other methods
// from any thread, Create and the destructor from the owning one.
class UnixSocketRelay {
 public:
  // Listens on `path` (owner-only); nullptr if it cannot.
  static std::unique_ptr<UnixSocketRelay> Create(std::string path, std::string target);
  ~UnixSocketRelay();
  UnixSocketRelay(const UnixSocketRelay&) = delete;
  UnixSocketRelay& operator=(const UnixSocketRelay&) = delete;

  const std::string& path() const { return path_; }
  // Closes every connection relayed so far (within one poll slice, 20 ms).
  void Sever() { sever_generation_.fetch_add(1); }
  void set_blocked(bool blocked) { blocked_.store(blocked); }
  // Connections relayed to the target so far.
  int64_t relayed() const { return relayed_.load(); }

 private:
  UnixSocketRelay(std::string path, std::string target, int listen_fd);
  void Loop();

  const std::string path_, target_;
  const int listen_fd_;
  std::atomic<bool> stopping_{false}, blocked_{false};
  std::atomic<int64_t> sever_generation_{0}, relayed_{0};
  std::thread thread_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_RELAY_H_
