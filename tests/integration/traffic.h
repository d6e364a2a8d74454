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

// One failed connection or round, with when it ran.
struct TrafficFailure {
  enum class Kind {
    kShort,        // a short connection: connect, one echo round, close
    kLongConnect,  // a keep-alive connection's connect and first round
    kLongRound,    // a later round on an established keep-alive connection
  };
  Kind kind;
  absl::Time start, end;
  std::string error;
};

// Result of a traffic run: every byte sent must come back, in order.
struct TrafficReport {
  int64_t short_ok = 0;
  int64_t short_failed = 0;
  int64_t long_rounds_ok = 0;
  int64_t long_failed = 0;
  int64_t long_connections = 0;  // keep-alive connections attempted
  int64_t bytes_verified = 0;
  std::vector<std::string> errors;  // the first few failures, for the test log
  // Every failure with its time (at most 1,000,000; the error text of the first 1,000),
  // when options.record_failures.
  std::vector<TrafficFailure> failures;
};

struct EchoTrafficOptions {
  absl::Duration duration = absl::Seconds(1);
  // Threads looping connect → send a random payload → read it back → close.
  int short_workers = 1;
  // Connections that stay open for the run, exchanging a chunk every long_interval.
  int long_connections = 1;
  size_t payload_bytes = 4096;       // per short connection
  size_t long_payload_bytes = 1024;  // per keep-alive round
  absl::Duration long_interval = absl::Milliseconds(50);
  // A pause between two short connections of one worker, and after a failed one (so a
  // worker does not spin while every connection is refused).
  absl::Duration short_pause = absl::ZeroDuration();
  absl::Duration pause_after_failure = absl::ZeroDuration();
  // Every worker makes at least one attempt, however late its thread starts.
  // Each short worker keeps going past `duration` until it has made this many attempts
  // (at most 30 s more), so a test can count on an amount of traffic however slow the
  // machine (a sanitizer build under load).
  int min_short_per_worker = 0;
  // A keep-alive connection that fails is opened again (after long_interval) instead
  // of ending its worker.
  bool reconnect_long = false;
  bool record_failures = false;
  // Ends the run early when it turns true (may be null).
  const std::atomic<bool>* stop = nullptr;
};

// Drives verified echo traffic at 127.0.0.1:port as `options` say; bounded in time
// and in count.
TrafficReport RunEchoTraffic(int port, const EchoTrafficOptions& options);

// The same with the defaults above: `short_workers` short-connection loops and
// `long_connections` keep-alive connections exchanging 1 KiB every 50 ms.
TrafficReport RunEchoTraffic(int port, absl::Duration duration, int short_workers,
                             int long_connections, size_t payload_bytes = 4096,
                             int min_short_per_worker = 0);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TRAFFIC_H_
