#ifndef TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_
#define TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_

// gRPC code: never include <openssl/...> next to this header.
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tandem::controlplane {

// gRPC server TLS credentials whose key and certificate chain can be replaced while
// the server runs: gRPC core asks a certificate-config callback at every new handshake
// (grpc_ssl_server_credentials_create_options_using_config_fetcher) and, when Update()
// gave a new pair since, builds a new handshaker factory from it; connections already
// open, and their streams, keep the TLS session they have. The C++ API of this gRPC
// (1.51) offers only static or file-watching providers, and tandem-ca's serving key is
// made in memory and never written to disk.
//
// Threading: Create on any thread; Update from any thread; gRPC calls the callback on
// its handshake threads. The object must outlive every server it was given to (hold
// the shared_ptr beside the grpc::Server and destroy the server first).
class ReloadableServerCredentials final : public grpc::ServerCredentials {
 public:
  // The credentials of a server's key, chain and the roots it names to clients as
  // acceptable issuers of theirs (PEM; gRPC needs at least one root, and verifies
  // client certificates against them only with a *_AND_VERIFY `request_type`).
  struct Pair {
    std::string key_pem;
    std::string chain_pem;
    std::string client_roots_pem;
  };
  // `request_type` as in grpc::SslServerCredentialsOptions.
  static std::shared_ptr<ReloadableServerCredentials> Create(
      grpc_ssl_client_certificate_request_type request_type, Pair first);
  ~ReloadableServerCredentials() override;

  // New handshakes use this pair from now on. gRPC checks it when it builds the next
  // handshaker factory and keeps the previous pair if the new one is unusable.
  void Update(Pair pair);

  // tandem-ca authenticates callers itself (CallerAuthenticator): an auth metadata
  // processor here would be a second, unused path, so it is refused (aborts).
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& processor) override;

 private:
  ReloadableServerCredentials() = default;
  // Called by grpc::Server while it is built.
  int AddPortToServer(const std::string& addr, grpc_server* server) override;
  // The certificate-config callback; `self` is this object.
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* self, grpc_ssl_server_certificate_config** config);
  // The pair given since gRPC last asked, as a new config; UNCHANGED when none.
  grpc_ssl_certificate_config_reload_status TakeNewPair(
      grpc_ssl_server_certificate_config** config);

  grpc_server_credentials* credentials_ = nullptr;  // owned; released in the destructor
  absl::Mutex mu_;
  Pair pair_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 1;        // of the pair above; Update bumps it
  uint64_t taken_version_ ABSL_GUARDED_BY(mu_) = 0;  // the one gRPC last took
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_
