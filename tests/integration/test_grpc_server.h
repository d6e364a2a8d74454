#ifndef TANDEM_TESTS_INTEGRATION_TEST_GRPC_SERVER_H_
#define TANDEM_TESTS_INTEGRATION_TEST_GRPC_SERVER_H_

// gRPC code: no <openssl/...> here.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::testing {

// A fresh `Service` (a fake whose Shutdown() ends its streams, such as a
// ScriptedStream) served by a gRPC server for one test; stopping it is destroying it, and
// restarting is starting another on the same address. Threading: Start and the
// destructor from the test thread; service() and port() from any.
template <typename Service>
class TestGrpcServer {
 public:
  // Serves on `address` ("unix:/abs/path", or "127.0.0.1:0" to pick a port).
  static absl::StatusOr<std::unique_ptr<TestGrpcServer>> Start(
      const std::string& address,
      const std::shared_ptr<grpc::ServerCredentials>& credentials) {
    auto service = std::make_unique<Service>();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(address, credentials, &port);
    builder.RegisterService(service.get());
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
      return absl::UnavailableError("cannot serve gRPC on " + address);
    }
    return std::unique_ptr<TestGrpcServer>(
        new TestGrpcServer(std::move(service), std::move(server), port));
  }
  ~TestGrpcServer() {
    service_->Shutdown();  // else Server::Shutdown waits its deadline for the streams
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  TestGrpcServer(const TestGrpcServer&) = delete;
  TestGrpcServer& operator=(const TestGrpcServer&) = delete;

  Service* service() { return service_.get(); }
  // Returns the TCP port bound (meaningless for a Unix socket).
  int port() const { return port_; }

 private:
  TestGrpcServer(std::unique_ptr<Service> service, std::unique_ptr<grpc::Server> server,
                 int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}

  // Declared first so the service outlives the server that runs it, as gRPC requires.
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TEST_GRPC_SERVER_H_
