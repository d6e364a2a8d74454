#ifndef TANDEM_TESTS_INTEGRATION_LOOPBACK_SERVER_H_
#define TANDEM_TESTS_INTEGRATION_LOOPBACK_SERVER_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace tandem::testing {

// A TCP server for tests on 127.0.0.1 (or ::1 for AF_INET6), port 0: an acceptor
// thread hands each connection to `handler` on a detached thread of its own, and
// closes the connection when the handler returns. Stop() shuts every connection down
// (and every descriptor a handler tracks) and waits, bounded, for the handlers.
// Threads: its own; Stop() and the destructor from the owning thread.
class LoopbackServer {
 public:
  // The open descriptors, shared with the handler threads, so a handler finishing
  // never touches a destroyed server.
  class Connections {
   public:
    // Makes Stop() shut `fd` down too (a handler's second socket).
    void Track(int fd);
    // Closes `fd` and forgets it, under the lock, so Stop() never shuts down a
    // descriptor number the kernel has handed out again.
    void Close(int fd);

   private:
    friend class LoopbackServer;
    absl::Mutex mu_;
    absl::flat_hash_set<int> open_fds_ ABSL_GUARDED_BY(mu_);
    int active_ ABSL_GUARDED_BY(mu_) = 0;
  };
  using Handler = std::function<void(int fd, Connections& connections)>;

  LoopbackServer(int family, Handler handler);
  ~LoopbackServer();
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  int64_t accepted() const { return accepted_.load(); }
  void Stop();

 private:
  void AcceptLoop();

  const Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> accepted_{0};
  std::thread acceptor_;
  std::shared_ptr<Connections> connections_ = std::make_shared<Connections>();
};

// The loopback address of `family` (AF_INET or AF_INET6) with `port`.
sockaddr_storage LoopbackAddress(int family, int port, socklen_t* len);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_LOOPBACK_SERVER_H_
