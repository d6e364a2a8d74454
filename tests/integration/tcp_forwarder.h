#ifndef TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_
#define TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_

#include <atomic>
#include <memory>

#include "tests/integration/loopback_server.h"

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
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  int port() const { return server_.port(); }
  // Connections accepted so far (relayed or, with no target, closed at once).
  int64_t accepted() const { return server_.accepted(); }
  void set_target_port(int port) { target_port_->store(port); }
  // Closes the listener and every relayed connection, and waits for the threads.
  void Stop() { server_.Stop(); }

 private:
  static void Relay(int client_fd, int target_port, LoopbackServer::Connections& conns);

  // Shared with the relay threads, which read it as each connection arrives.
  const std::shared_ptr<std::atomic<int>> target_port_ =
      std::make_shared<std::atomic<int>>(0);
  LoopbackServer server_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TCP_FORWARDER_H_
