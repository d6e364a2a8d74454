// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3).
#include "controlplane/server/reloadable_server_credentials.h"

#include <grpc/grpc.h>

#include <cstdlib>

#include "common/log/log.h"

namespace tandem::controlplane {

std::shared_ptr<ReloadableServerCredentials> ReloadableServerCredentials::Create(
    grpc_ssl_client_certificate_request_type request_type, Pair first) {
  std::shared_ptr<ReloadableServerCredentials> credentials(
      new ReloadableServerCredentials());
  {
    absl::MutexLock lock(&credentials->mu_);
    credentials->pair_ = std::move(first);
  }
  // gRPC takes the first pair through the callback too, when the port is added.
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          request_type, &ReloadableServerCredentials::Fetch, credentials.get());
  credentials->credentials_ = grpc_ssl_server_credentials_create_with_options(options);
  return credentials;
}

ReloadableServerCredentials::~ReloadableServerCredentials() {
  grpc_server_credentials_release(credentials_);
}

void ReloadableServerCredentials::Update(Pair pair) {
  absl::MutexLock lock(&mu_);
  pair_ = std::move(pair);
  ++version_;
}

void ReloadableServerCredentials::SetAuthMetadataProcessor(
    const std::shared_ptr<grpc::AuthMetadataProcessor>&) {
  log::Error("ca", "ReloadableServerCredentials takes no auth metadata processor");
  std::abort();
}

int ReloadableServerCredentials::AddPortToServer(const std::string& addr,
                                                 grpc_server* server) {
  return grpc_server_add_http2_port(server, addr.c_str(), credentials_);
}

grpc_ssl_certificate_config_reload_status ReloadableServerCredentials::Fetch(
    void* self, grpc_ssl_server_certificate_config** config) {
  return static_cast<ReloadableServerCredentials*>(self)->TakeNewPair(config);
}

grpc_ssl_certificate_config_reload_status ReloadableServerCredentials::TakeNewPair(
    grpc_ssl_server_certificate_config** config) {
  absl::MutexLock lock(&mu_);
  if (taken_version_ == version_) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  grpc_ssl_pem_key_cert_pair pair = {pair_.key_pem.c_str(), pair_.chain_pem.c_str()};
  // Copied by gRPC.
  *config =
      grpc_ssl_server_certificate_config_create(pair_.client_roots_pem.c_str(), &pair, 1);
  taken_version_ = version_;
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

}  // namespace tandem::controlplane
