#include "controlplane/injection/injector_endpoint.h"

#include <utility>

namespace tandem::controlplane {

absl::StatusOr<std::unique_ptr<InjectorEndpoint>> InjectorEndpoint::Create(
    Options options, const CaCore* core, http::HttpServer::Handler inject) {
  if (!inject) {
    return absl::InvalidArgumentError("the injector endpoint needs an inject function");
  }
  if (options.dns_names.empty()) {
    return absl::InvalidArgumentError("injector: at least one DNS name is required");
  }
  if (options.certificate_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("injector: the certificate TTL must be positive");
  }
  ServingCertificateRenewer::Options renewal;
  renewal.name = "injector";
  renewal.dns_names = options.dns_names;
  renewal.ttl = options.certificate_ttl;
  renewal.renewal = options.renewal;
  renewal.registry = options.registry;
  renewal.metric_prefix = "tandem_injector_certificate";
  absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>> renewer =
      ServingCertificateRenewer::Create(std::move(renewal), core);
  if (!renewer.ok()) return renewer.status();
  http::HttpServer::Options http;
  if (absl::Status s = http::SetListenAddress(options.listen_address, &http); !s.ok()) {
    return s;
  }
  http.name = "injector";
  http.registry = options.registry;
  http.max_body_bytes = options.max_body_bytes;
  http.read_timeout = options.read_timeout;
  http.tls =
      http::TlsCredentials{(*renewer)->first().chain_pem, (*renewer)->first().key_pem};
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Create(std::move(http));
  if (!server.ok()) return server.status();
  (*server)->Handle("/inject", std::move(inject));
  return std::unique_ptr<InjectorEndpoint>(
      new InjectorEndpoint(*std::move(renewer), *std::move(server)));
}

InjectorEndpoint::InjectorEndpoint(std::unique_ptr<ServingCertificateRenewer> renewer,
                                   std::unique_ptr<http::HttpServer> server)
    : renewer_(std::move(renewer)), server_(std::move(server)) {}

InjectorEndpoint::~InjectorEndpoint() { Stop(); }

absl::Status InjectorEndpoint::Start() {
  if (absl::Status s = server_->Start(); !s.ok()) return s;
  renewer_->Start([server = server_.get()](const ServingCertificate& fresh) {
    return server->SetTlsCredentials(
        http::TlsCredentials{fresh.chain_pem, fresh.key_pem});
  });
  return absl::OkStatus();
}

void InjectorEndpoint::Stop() {
  renewer_->Stop();
  server_->Stop();
}

}  // namespace tandem::controlplane
