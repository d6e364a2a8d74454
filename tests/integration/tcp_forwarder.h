#ifndef TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_
#define TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace tandem::testing {

// A stable address in front of a server that restarts on a new port, the way a
// Kubernetes Service fronts a restarted pod: listens on 127.0.0.1 (port 0) for its
// whole life and relays each connection, byte for byte, to 127.0.0.1:target_port as
// it is when the connection arrives. With no target, or none listening, the
// connection is closed at once (a client sees the server as down).
//
// Threads: an acceptor and one relay thread per connection, all its own;
// set_target_port() from any thread; Stop() and the destructor from the owning thread.
class TcpForwarder {
 public:
  TcpForwarder();
  ~TcpForwarder();
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  int port() const { return port_; }
  void set_target_port(int port) { target_port_.store(port); }
  // Closes the listener and every relayed connection, and waits for the threads.
  void Stop();

 private:
  // Shared with the relay threads, so one finishing never touches a destroyed
  // forwarder.
  struct Connections {
    absl::Mutex mu;
    absl::flat_hash_set<int> open_fds ABSL_GUARDED_BY(mu);
    int active ABSL_GUARDED_BY(mu) = 0;
  };
  void AcceptLoop();
  static void Relay(std::shared_ptr<Connections> conns, int client_fd, int target_port);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> target_port_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::shared_ptr<Connections> conns_ = std::make_shared<Connections>();
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_
