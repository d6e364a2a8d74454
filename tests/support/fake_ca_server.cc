// gRPC code: never include <openssl/...> here.
#include "tests/support/fake_ca_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::agent {

struct FakeCaServer::Impl final
    : public istio::v1::auth::IstioCertificateService::Service {
  const TestCa* ca = nullptr;
  std::string token;
  std::string spiffe_id;
  std::atomic<Mode> mode{Mode::kIssue};
  std::atomic<int> requests{0}, unauthenticated{0};
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  grpc::Status CreateCertificate(
      grpc::ServerContext* context,
      const istio::v1::auth::IstioCertificateRequest* request,
      istio::v1::auth::IstioCertificateResponse* response) override {
    requests.fetch_add(1);
    auto auth = context->client_metadata().find("authorization");
    if (auth == context->client_metadata().end() ||
        std::string(auth->second.data(), auth->second.size()) != "Bearer " + token) {
      unauthenticated.fetch_add(1);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad bearer token");
    }
    absl::Duration ttl = request->validity_duration() > 0
                             ? absl::Seconds(request->validity_duration())
                             : absl::Hours(1);
    absl::StatusOr<std::vector<std::string>> chain;
    switch (mode.load()) {
      case Mode::kIssue:
        chain = ca->Issue(request->csr(), spiffe_id, ttl);
        break;
      case Mode::kGarbage:
        chain = std::vector<std::string>{
            "-----BEGIN CERTIFICATE-----\nnot base64!\n"
            "-----END CERTIFICATE-----\n",
            "garbage"};
        break;
      case Mode::kAnotherKey:
        chain = ca->IssueForAnotherKey(spiffe_id, ttl);
        break;
    }
    if (!chain.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(chain.status().message()));
    }
    for (const std::string& pem : *chain) response->add_cert_chain(pem);
    return grpc::Status::OK;
  }
};

absl::StatusOr<std::unique_ptr<FakeCaServer>> FakeCaServer::Create(
    const TestCa* ca, std::string token, std::string spiffe_id) {
  auto impl = std::make_unique<Impl>();
  impl->ca = ca;
  impl->token = std::move(token);
  impl->spiffe_id = std::move(spiffe_id);
  return std::unique_ptr<FakeCaServer>(new FakeCaServer(std::move(impl)));
}

FakeCaServer::FakeCaServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FakeCaServer::~FakeCaServer() { Stop(); }

absl::Status FakeCaServer::Start() {
  if (impl_->server) return absl::FailedPreconditionError("already serving");
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back(
      {impl_->ca->server_key_pem(), impl_->ca->server_chain_pem()});
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &bound);
  builder.RegisterService(impl_.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || bound == 0) {
    impl_->server.reset();
    return absl::UnavailableError("fake CA cannot listen on 127.0.0.1:0");
  }
  impl_->port = bound;
  return absl::OkStatus();
}

void FakeCaServer::Stop() {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
  impl_->server.reset();
}

int FakeCaServer::port() const { return impl_->port; }
void FakeCaServer::set_mode(Mode mode) { impl_->mode.store(mode); }
int FakeCaServer::requests() const { return impl_->requests.load(); }
int FakeCaServer::unauthenticated() const { return impl_->unauthenticated.load(); }

}  // namespace tandem::agent
