// gRPC code: never include <openssl/...> here.
#include "agent/ca_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "agent/ca_channel.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::agent {

struct CaClient::Impl {
  CaClientOptions options;
  std::unique_ptr<CaChannel> channel;  // re-reads the CA's roots before every call
};

absl::StatusOr<std::unique_ptr<CaClient>> CaClient::Create(CaClientOptions options) {
  if (options.root_pem.empty()) {
    return absl::InvalidArgumentError("CA root certificate is required to verify the CA");
  }
  auto impl = std::make_unique<Impl>();
  impl->channel = std::make_unique<CaChannel>(options);
  impl->options = std::move(options);
  return std::unique_ptr<CaClient>(new CaClient(std::move(impl)));
}

CaClient::CaClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CaClient::~CaClient() = default;

absl::StatusOr<std::vector<std::string>> CaClient::CreateCertificate(
    const std::string& csr_pem, const std::string& token, int64_t validity_seconds) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoSeconds(impl_->options.timeout));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  istio::v1::auth::IstioCertificateRequest request;
  request.set_csr(csr_pem);
  request.set_validity_duration(validity_seconds);
  istio::v1::auth::IstioCertificateResponse response;
  grpc::Status status =
      istio::v1::auth::IstioCertificateService::NewStub(impl_->channel->Get())
          ->CreateCertificate(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("CA: ", status.error_message()));
  }
  return std::vector<std::string>(response.cert_chain().begin(),
                                  response.cert_chain().end());
}

}  // namespace tandem::agent
