#ifndef TANDEM_TESTS_SUPPORT_FAKE_HTTPS_SERVER_H_
#define TANDEM_TESTS_SUPPORT_FAKE_HTTPS_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace tandem::controlplane {

struct FakeHttpsRequest {
  std::string method;
  std::string path;
  std::string authorization;  // the Authorization header's value
  std::string content_type;
  std::string body;
};

struct FakeHttpsReply {
  int status = 200;
  std::string body;
  bool chunked = false;  // send the body as two chunks
};

// Test-only HTTPS server on 127.0.0.1 (port 0) standing in for the Kubernetes API
// server: its own fresh root issues a certificate for "kubernetes.default.svc",
// "localhost" and 127.0.0.1. One request per connection, served in order.
// Threading: one background thread accepts and calls `handler` (which must be
// thread-safe against the test thread); Create/destructor on the test thread;
// port(), ca_pem() and requests() from any thread. The destructor stops it.
// The header names no BoringSSL type, so gRPC tests may include it.
class FakeHttpsServer {
 public:
  using Handler = std::function<FakeHttpsReply(const FakeHttpsRequest&)>;
  static absl::StatusOr<std::unique_ptr<FakeHttpsServer>> Create(Handler handler);
  ~FakeHttpsServer();

  int port() const { return port_; }
  const std::string& ca_pem() const { return ca_pem_; }
  int requests() const { return requests_.load(); }

  struct Tls;

 private:
  FakeHttpsServer(Handler handler, std::unique_ptr<Tls> tls, int listen_fd, int port,
                  std::string ca_pem, int stop_read, int stop_write);
  void Run();
  void Serve(int fd);

  Handler handler_;
  std::unique_ptr<Tls> tls_;
  int listen_fd_;
  int port_;
  std::string ca_pem_;
  int stop_read_;
  int stop_write_;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_TESTS_SUPPORT_FAKE_HTTPS_SERVER_H_
