#include "controlplane/auth/signing_key.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/pki/private_key.h"

namespace tandem::controlplane {

absl::Status WriteNewSigningKey(const std::string& path) {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> pem = key->ToPem();
  if (!pem.ok()) return pem.status();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  bool ok = write(fd, pem->data(), pem->size()) == static_cast<ssize_t>(pem->size());
  close(fd);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("writing ", path));
}

}  // namespace tandem::controlplane
