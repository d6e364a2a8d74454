#ifndef TANDEM_TESTS_SUPPORT_FAKE_CA_SERVER_H_
#define TANDEM_TESTS_SUPPORT_FAKE_CA_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/test_ca.h"

namespace tandem::agent {

// Test double for the control plane: istio.v1.auth.IstioCertificateService over
// gRPC+TLS on 127.0.0.1, signing with a TestCa. It authenticates callers by an exact
// `authorization: Bearer <token>` and issues for the one SPIFFE ID that token stands
// for, as a real CA writes the SAN from the authenticated identity. It can be told to
// misbehave (see Mode) and can be stopped and started again, on a new port each time
// (tests reach it through a testing::TcpForwarder, as agents reach a CA restarted
// behind a Service).
//
// Threading: Start/Stop/port from the test's main thread; set_mode and the counters
// from any thread; gRPC serves requests on its own threads.
class FakeCaServer {
 public:
  enum class Mode {
    kIssue,       // a valid chain for the caller's key
    kGarbage,     // a chain that is not PEM at all
    kAnotherKey,  // a valid chain for the right identity but another key
  };

  // `ca` must outlive the server.
  static absl::StatusOr<std::unique_ptr<FakeCaServer>> Create(const TestCa* ca,
                                                              std::string token,
                                                              std::string spiffe_id);
  ~FakeCaServer();

  // Listens on 127.0.0.1, on a port of its choosing (see port()).
  absl::Status Start();
  void Stop();
  int port() const;

  void set_mode(Mode mode);
  int requests() const;
  int unauthenticated() const;

  struct Impl;

 private:
  explicit FakeCaServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::agent

#endif  // TANDEM_TESTS_SUPPORT_FAKE_CA_SERVER_H_
