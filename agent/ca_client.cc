// gRPC code: never include <openssl/...> here.
#include "agent/ca_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/ca_channel.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::agent {

struct CaClient::Impl {
  CaClientOptions options;
  std::shared_ptr<CaChannel> channel;  // re-reads the CA's roots before every call
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  std::set<grpc::ClientContext*> in_flight ABSL_GUARDED_BY(mu);
};

absl::StatusOr<std::unique_ptr<CaClient>> CaClient::Create(CaClientOptions options) {
  if (options.root_pem.empty()) {
    return absl::InvalidArgumentError("CA root certificate is required to verify the CA");
  }
  auto impl = std::make_unique<Impl>();
  impl->channel = std::make_shared<CaChannel>(options);
  impl->options = std::move(options);
  return std::unique_ptr<CaClient>(new CaClient(std::move(impl)));
}

CaClient::CaClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CaClient::~CaClient() = default;

std::shared_ptr<CaChannel> CaClient::channel() const { return impl_->channel; }

absl::StatusOr<std::vector<std::string>> CaClient::CreateCertificate(
    const std::string& csr_pem, const std::string& token, int64_t validity_seconds,
    absl::Time deadline) {
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(std::min(absl::Now() + impl_->options.timeout, deadline)));
  context.set_wait_for_ready(true);
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return absl::CancelledError("CA client shut down");
    impl_->in_flight.insert(&context);
  }
  istio::v1::auth::IstioCertificateRequest request;
  request.set_csr(csr_pem);
  request.set_validity_duration(validity_seconds);
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status =
      istio::v1::auth::IstioCertificateService::NewStub(impl_->channel->Get())
          ->CreateCertificate(&context, request, &response);
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->in_flight.erase(&context);
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("CA: ", status.error_message()));
  }
  return std::vector<std::string>(response.cert_chain().begin(),
                                  response.cert_chain().end());
}

void CaClient::Shutdown() {
  absl::MutexLock lock(&impl_->mu);
  impl_->shut_down = true;
  for (grpc::ClientContext* context : impl_->in_flight) context->TryCancel();
}

}  // namespace tandem::agent
