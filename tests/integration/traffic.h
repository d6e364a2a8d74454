#ifndef TANDEM_TESTS_INTEGRATION_TRAFFIC_H_
#define TANDEM_TESTS_INTEGRATION_TRAFFIC_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "tests/integration/loopback_server.h"

namespace tandem::testing {

// A TCP echo server on 127.0.0.1 (or ::1 for AF_INET6; port 0): one detached thread
// per connection, each echoing until EOF, then half-closing back. Stop() shuts every
// connection down and waits for their threads to finish. Threads: its own; Stop() from
// the test thread.
class EchoServer {
 public:
  explicit EchoServer(int family = AF_INET);
  int port() const { return server_.port(); }
  int64_t connections() const { return server_.accepted(); }
  void Stop() { server_.Stop(); }

 private:
  LoopbackServer server_;
};

// Connects to 127.0.0.1:port (::1 for AF_INET6) with TCP_NODELAY and 5 s read/write
// timeouts; -1 on failure.
int ConnectLoopback(int port, int family = AF_INET);

// Result of a traffic run: every byte sent must come back, in order.
struct TrafficReport {
  int64_t short_ok = 0;
  int64_t short_failed = 0;
  int64_t long_rounds_ok = 0;
  int64_t long_failed = 0;
  int64_t bytes_verified = 0;
  std::vector<std::string> errors;  // the first few failures, for the test log
};

// Drives verified echo traffic at 127.0.0.1:port for `duration` (bounded):
// `short_workers` threads loop connect → send a random payload → read it back →
// close; `long_connections` connections stay open and exchange a chunk every
// 50 ms for the whole run. Each short worker keeps going past `duration` until it has
// made `min_short_per_worker` attempts (at most 30 s more), so a test can count on an
// amount of traffic however slow the machine (a sanitizer build under load).
TrafficReport RunEchoTraffic(int port, absl::Duration duration, int short_workers,
                             int long_connections, size_t payload_bytes = 4096,
                             int min_short_per_worker = 0);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TRAFFIC_H_
