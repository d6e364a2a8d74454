#ifndef TANDEM_TESTS_INTEGRATION_CLOSED_PORT_H_
#define TANDEM_TESTS_INTEGRATION_CLOSED_PORT_H_

namespace tandem::testing {

// A port on 127.0.0.1 that is bound but never listens, for "nothing listens there"
// tests: connections to it are refused, and while this object lives no other socket
// can take the port (a port merely closed may be reused by anyone a moment later).
// Main test thread only.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;

  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_CLOSED_PORT_H_
