#ifndef TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_
#define TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_

// gRPC code: never include <openssl/...> next to this header.
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>

#include <ctime>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem::controlplane {

// gRPC server TLS credentials whose key and certificate chain can be replaced while
// the server runs. They are gRPC core's TLS credentials (grpc_tls_server_credentials_create),
// which make each handshaker under the lock that guards the handshaker factory a
// certificate change replaces; the SSL credentials' certificate-config callback does
// not, and a handshake racing a swap can use a freed factory (grpc/grpc#36693; see
// docs/controlplane.md). The only reloading certificate provider of this gRPC (1.51)
// watches files, so the pair lives in anonymous memory named by a path: a memfd seen as
// /proc/self/fd/N, never a file on disk. gRPC re-reads it every second: new handshakes
// get a pair within about a second of Update; open connections, and their streams,
// keep the TLS session they have.
//
// Threading: Create on any thread; Update from any thread; gRPC's watcher thread reads
// the memfds. The object must outlive every server it was given to (hold the shared_ptr
// beside the grpc::Server and destroy the server first).
class ReloadableServerCredentials final : public grpc::ServerCredentials {
 public:
  // The credentials of a server's key, chain and the roots it names to clients as
  // acceptable issuers of theirs (PEM; gRPC needs at least one root, and verifies
  // client certificates against them only with a *_AND_VERIFY `request_type`). The key
  // must match the chain's first certificate: gRPC refuses new handshakes while it
  // holds a pair that does not.
  struct Pair {
    std::string key_pem;
    std::string chain_pem;
    std::string client_roots_pem;
  };
  // `request_type` as in grpc::SslServerCredentialsOptions. Fails when no memfd can be
  // made or /proc/self/fd cannot be read.
  static absl::StatusOr<std::shared_ptr<ReloadableServerCredentials>> Create(
      grpc_ssl_client_certificate_request_type request_type, const Pair& first);
  ~ReloadableServerCredentials() override;

  // New handshakes use this pair from gRPC's next re-read (within about a second) on.
  // Fails, keeping the current pair, when no memfd can be made.
  absl::Status Update(const Pair& pair);

  // tandem-ca authenticates callers itself (CallerAuthenticator): an auth metadata
  // processor here would be a second, unused path, so it is refused (aborts).
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& processor) override;

 private:
  ReloadableServerCredentials() = default;
  // Called by grpc::Server while it is built.
  int AddPortToServer(const std::string& addr, grpc_server* server) override;
  // A new memfd holding `bytes`, its modification time later than every earlier one's:
  // gRPC reads the key path, then the chain path (both name identity_fd_), and retries
  // when a file's modification time (in seconds) changed while it read, so a swap
  // between the two reads is a retry, never a key and chain of different pairs.
  absl::StatusOr<int> NewMemfd(absl::string_view bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `fd` name a new memfd holding `bytes`, in one step (dup3) for any reader.
  absl::Status Replace(int fd, absl::string_view bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc_server_credentials* credentials_ = nullptr;  // owned; released in the destructor
  absl::Mutex mu_;  // serialises Updates; the fds below are fixed after Create
  int identity_fd_ = -1;  // the key, then the chain
  int roots_fd_ = -1;
  std::time_t last_mtime_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_RELOADABLE_SERVER_CREDENTIALS_H_
