#ifndef TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_GRPC_SERVER_H_
#define TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_GRPC_SERVER_H_

// gRPC code: no <openssl/...> here.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::testing {

// A fresh `Service` (a fake with a Shutdown() that ends its streams, such as a
// ScriptedStream) served over plaintext gRPC on a Unix socket, for one test; stopping
// means destroying it. Restarting a server is destroying it and starting another on the
// same path. Threading: Start and the destructor from the test thread; service() any.
template <typename Service>
class UnixSocketGrpcServer {
 public:
  static absl::StatusOr<std::unique_ptr<UnixSocketGrpcServer>> Start(
      const std::string& socket_path) {
    auto service = std::make_unique<Service>();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
    builder.RegisterService(service.get());
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr) {
      return absl::UnavailableError("cannot serve gRPC on unix:" + socket_path);
    }
    return std::unique_ptr<UnixSocketGrpcServer>(
        new UnixSocketGrpcServer(std::move(service), std::move(server)));
  }
  ~UnixSocketGrpcServer() {
    service_->Shutdown();  // else Server::Shutdown waits its deadline for the streams
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  UnixSocketGrpcServer(const UnixSocketGrpcServer&) = delete;
  UnixSocketGrpcServer& operator=(const UnixSocketGrpcServer&) = delete;

  Service* service() { return service_.get(); }

 private:
  UnixSocketGrpcServer(std::unique_ptr<Service> service,
                       std::unique_ptr<grpc::Server> server)
      : service_(std::move(service)), server_(std::move(server)) {}

  // Declared first so the service outlives the server that runs it, as gRPC requires.
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_UNIX_SOCKET_GRPC_SERVER_H_
