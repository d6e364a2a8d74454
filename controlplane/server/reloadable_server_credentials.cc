// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3).
#include "controlplane/server/reloadable_server_credentials.h"

#include <fcntl.h>
#include <grpc/grpc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace tandem::controlplane {
namespace {

// How often gRPC's watcher re-reads the memfds: the delay of a swap, and one small read
// of anonymous memory a second.
constexpr unsigned kRefreshSeconds = 1;

std::string ProcPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

}  // namespace

absl::StatusOr<std::shared_ptr<ReloadableServerCredentials>>
ReloadableServerCredentials::Create(grpc_ssl_client_certificate_request_type request_type,
                                    const Pair& first) {
  std::shared_ptr<ReloadableServerCredentials> credentials(
      new ReloadableServerCredentials());
  {
    absl::MutexLock lock(&credentials->mu_);
    absl::StatusOr<int> identity = credentials->NewMemfd(first.key_pem + first.chain_pem);
    if (!identity.ok()) return identity.status();
    credentials->identity_fd_ = *identity;
    absl::StatusOr<int> roots = credentials->NewMemfd(first.client_roots_pem);
    if (!roots.ok()) return roots.status();
    credentials->roots_fd_ = *roots;
  }
  const std::string identity_path = ProcPath(credentials->identity_fd_);
  const std::string roots_path = ProcPath(credentials->roots_fd_);
  // gRPC's watcher would only log a path it cannot open, and serve nothing.
  for (const std::string& path : {identity_path, roots_path}) {
    if (access(path.c_str(), R_OK) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("serving certificate: ", path));
    }
  }
  // The key and the chain share one memfd: the watcher reads it once as each.
  grpc_tls_certificate_provider* provider = grpc_tls_certificate_provider_file_watcher_create(
      identity_path.c_str(), identity_path.c_str(), roots_path.c_str(), kRefreshSeconds);
  grpc_tls_credentials_options* options = grpc_tls_credentials_options_create();
  grpc_tls_credentials_options_set_certificate_provider(options, provider);  // takes a ref
  grpc_tls_certificate_provider_release(provider);
  grpc_tls_credentials_options_watch_root_certs(options);
  grpc_tls_credentials_options_watch_identity_key_cert_pairs(options);
  grpc_tls_credentials_options_set_cert_request_type(options, request_type);
  credentials->credentials_ = grpc_tls_server_credentials_create(options);  // owns options
  return credentials;
}

ReloadableServerCredentials::~ReloadableServerCredentials() {
  // With the servers gone this ends the watcher (joins its thread) before its fds close.
  if (credentials_ != nullptr) grpc_server_credentials_release(credentials_);
  if (identity_fd_ >= 0) close(identity_fd_);
  if (roots_fd_ >= 0) close(roots_fd_);
}

absl::Status ReloadableServerCredentials::Update(const Pair& pair) {
  absl::MutexLock lock(&mu_);
  // Roots first: a reader between the two sees old roots with a new pair or new roots
  // with the old pair, each for at most a refresh, and never a torn pair.
  if (absl::Status status = Replace(roots_fd_, pair.client_roots_pem); !status.ok()) {
    return status;
  }
  return Replace(identity_fd_, pair.key_pem + pair.chain_pem);
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

absl::StatusOr<int> ReloadableServerCredentials::NewMemfd(absl::string_view bytes) {
  const int fd = memfd_create("tandem-ca-serving", MFD_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "serving certificate: memfd_create");
  for (size_t written = 0; written < bytes.size();) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      return absl::ErrnoToStatus(error, "serving certificate: writing a memfd");
    }
    written += static_cast<size_t>(n);
  }
  // Ahead of the clock when updates come faster than one a second; gRPC only compares.
  last_mtime_ = std::max(std::time(nullptr), last_mtime_ + 1);
  const timespec times[2] = {{last_mtime_, 0}, {last_mtime_, 0}};
  if (futimens(fd, times) != 0) {
    const int error = errno;
    close(fd);
    return absl::ErrnoToStatus(error, "serving certificate: futimens on a memfd");
  }
  return fd;
}

absl::Status ReloadableServerCredentials::Replace(int fd, absl::string_view bytes) {
  absl::StatusOr<int> fresh = NewMemfd(bytes);
  if (!fresh.ok()) return fresh.status();
  const int rc = dup3(*fresh, fd, O_CLOEXEC);
  const int error = errno;
  close(*fresh);
  if (rc < 0) return absl::ErrnoToStatus(error, "serving certificate: dup3");
  return absl::OkStatus();
}

}  // namespace tandem::controlplane
