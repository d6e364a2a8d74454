#include "controlplane/revocation/file_revocation_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"

namespace tandem::controlplane {
namespace {

constexpr char kFileName[] = "revocations.jsonl";

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Creates `dir` 0700 if absent; refuses one that others can access, since the list of
// revocations decides who is trusted.
absl::Status PrepareDirectory(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir", dir);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Errno("stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "state directory %s is mode %o; it must be owner-only (chmod 700 %s)", dir,
        st.st_mode & 07777, dir));
  }
  return absl::OkStatus();
}

// Writes `content` to `path` so that a crash leaves either the old or the new file:
// temporary file (0600), fsync, rename over `path`, fsync of the directory.
absl::Status WriteFileAtomically(const std::string& dir, const std::string& path,
                                 const std::string& content) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open", temp);
  absl::Cleanup close_fd = [fd] { close(fd); };
  // O_CREAT keeps the mode of a leftover temporary file; make sure it is 0600.
  if (fchmod(fd, 0600) != 0) return Errno("chmod", temp);
  for (size_t written = 0; written < content.size();) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", temp);
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return Errno("fsync", temp);
  if (rename(temp.c_str(), path.c_str()) != 0) return Errno("rename", temp);
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno("open", dir);
  absl::Cleanup close_dir = [dir_fd] { close(dir_fd); };
  if (fsync(dir_fd) != 0) return Errno("fsync", dir);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileRevocationBackend>> FileRevocationBackend::Create(
    std::string state_dir) {
  if (state_dir.empty()) {
    return absl::InvalidArgumentError("the revocation state directory is not set");
  }
  if (absl::Status s = PrepareDirectory(state_dir); !s.ok()) return s;
  std::string path = absl::StrCat(state_dir, "/", kFileName);
  return std::unique_ptr<FileRevocationBackend>(
      new FileRevocationBackend(std::move(state_dir), std::move(path)));
}

absl::StatusOr<std::string> FileRevocationBackend::Load() {
  absl::StatusOr<std::string> text = ReadFileToString(path_);
  if (!text.ok()) {
    if (access(path_.c_str(), F_OK) == 0) return text.status();  // exists, unreadable
    return std::string();                                        // first start
  }
  return text;
}

absl::StatusOr<std::string> FileRevocationBackend::Update(const Edit& edit) {
  absl::StatusOr<std::string> stored = Load();
  if (!stored.ok()) return stored.status();
  absl::StatusOr<std::string> next = edit(*stored);
  if (!next.ok()) return next.status();
  if (*next == *stored) return next;
  if (absl::Status s = WriteFileAtomically(dir_, path_, *next); !s.ok()) return s;
  return next;
}

}  // namespace tandem::controlplane
