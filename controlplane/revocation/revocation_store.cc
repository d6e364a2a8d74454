#include "controlplane/revocation/revocation_store.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/spiffe_id.h"

namespace tandem::controlplane {
namespace {

using tandem::policy::v1::Revocation;

constexpr char kFileName[] = "revocations.jsonl";
constexpr size_t kMaxSerialHexDigits = 40;  // RFC 5280: at most 20 octets

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

std::string KeyOf(const Revocation& entry) {
  return entry.has_serial_hex() ? absl::StrCat("serial:", entry.serial_hex())
                                : absl::StrCat("id:", entry.spiffe_id());
}

bool Expired(const Revocation& entry, absl::Time now) {
  return absl::FromUnixSeconds(entry.expires_unix_seconds()) <= now;
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

absl::StatusOr<std::string> NormalizeSerialHex(const std::string& serial_hex) {
  std::string hex = absl::AsciiStrToLower(absl::StrReplaceAll(serial_hex, {{":", ""}}));
  if (hex.empty() || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("serial \"", serial_hex.substr(0, 64),
                     "\" is not hexadecimal (e.g. 1f3a9c or 1F:3A:9C)"));
  }
  hex.erase(0, std::min(hex.find_first_not_of('0'), hex.size()));
  if (hex.empty()) return absl::InvalidArgumentError("serial 0 is not a certificate's");
  if (hex.size() > kMaxSerialHexDigits) {
    return absl::InvalidArgumentError(
        absl::StrCat("serial has ", hex.size(), " hex digits; X.509 allows at most 40"));
  }
  return hex;
}

RevocationStore::RevocationStore(Options options, std::string path)
    : options_(std::move(options)), path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<RevocationStore>> RevocationStore::Open(Options options,
                                                                       absl::Time now) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("the revocation state directory is not set");
  }
  if (absl::Status s = PrepareDirectory(options.state_dir); !s.ok()) return s;
  std::string path = absl::StrCat(options.state_dir, "/", kFileName);
  std::unique_ptr<RevocationStore> store(new RevocationStore(std::move(options), path));
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (access(path.c_str(), F_OK) == 0) return text.status();  // exists, unreadable
    text = "";                                                  // first start
  }
  absl::MutexLock lock(&store->mu_);
  int line_number = 0;
  size_t expired = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    ++line_number;
    Revocation entry;
    google::protobuf::util::JsonParseOptions strict;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        std::string(line.data(), line.size()), &entry, strict);
    if (!parsed.ok() || entry.target_case() == Revocation::TARGET_NOT_SET) {
      return absl::DataLossError(
          absl::StrCat(path, ":", line_number, ": not a revocation entry",
                       parsed.ok() ? "" : absl::StrCat(" (", parsed.ToString(), ")"),
                       "; fix or remove the line"));
    }
    if (Expired(entry, now)) {
      ++expired;
      continue;
    }
    store->entries_[KeyOf(entry)] = std::move(entry);
  }
  if (expired > 0) {
    if (absl::Status s = store->Persist(); !s.ok()) return s;
  }
  return store;
}

absl::StatusOr<Revocation> RevocationStore::RevokeSerial(const std::string& serial_hex,
                                                         absl::Time not_after,
                                                         const std::string& reason,
                                                         bool close_open_connections,
                                                         absl::Time now) {
  absl::StatusOr<std::string> serial = NormalizeSerialHex(serial_hex);
  if (!serial.ok()) return serial.status();
  if (not_after <= now) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not-after ",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", not_after, absl::UTCTimeZone()),
        " is past: that certificate is already dead"));
  }
  Revocation entry;
  entry.set_serial_hex(*serial);
  entry.set_expires_unix_seconds(absl::ToUnixSeconds(not_after));
  entry.set_reason(reason);
  entry.set_close_open_connections(close_open_connections);
  return Add(std::move(entry));
}

absl::StatusOr<Revocation> RevocationStore::RevokeSpiffeId(const std::string& spiffe_id,
                                                           const std::string& reason,
                                                           bool close_open_connections,
                                                           absl::Time now) {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(spiffe_id);
  if (!id.ok()) return id.status();
  Revocation entry;
  entry.set_spiffe_id(id->ToString());
  // Round up, so the entry never lapses before the last certificate it covers.
  entry.set_expires_unix_seconds(absl::ToUnixSeconds(now + options_.max_ttl) + 1);
  entry.set_reason(reason);
  entry.set_close_open_connections(close_open_connections);
  return Add(std::move(entry));
}

absl::StatusOr<Revocation> RevocationStore::Add(Revocation entry) {
  {
    absl::MutexLock lock(&mu_);
    std::string key = KeyOf(entry);
    auto it = entries_.find(key);
    std::optional<Revocation> previous;
    if (it != entries_.end()) {
      previous = it->second;
      // Revoking again never shortens an entry.
      entry.set_expires_unix_seconds(
          std::max(entry.expires_unix_seconds(), previous->expires_unix_seconds()));
    }
    entries_[key] = entry;
    if (absl::Status s = Persist(); !s.ok()) {
      // Not on disk: not in force either, so a restart cannot silently undo it.
      if (previous) {
        entries_[key] = *previous;
      } else {
        entries_.erase(key);
      }
      return s;
    }
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return entry;
}

bool RevocationStore::IsSpiffeIdRevoked(const std::string& spiffe_id,
                                        absl::Time now) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(absl::StrCat("id:", spiffe_id));
  return it != entries_.end() && !Expired(it->second, now);
}

bool RevocationStore::IsSerialRevoked(const std::string& serial_hex,
                                      absl::Time now) const {
  absl::StatusOr<std::string> serial = NormalizeSerialHex(serial_hex);
  if (!serial.ok()) return false;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(absl::StrCat("serial:", *serial));
  return it != entries_.end() && !Expired(it->second, now);
}

std::vector<Revocation> RevocationStore::Live(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<Revocation> live;
  for (const auto& [key, entry] : entries_) {
    if (!Expired(entry, now)) live.push_back(entry);
  }
  return live;
}

absl::StatusOr<size_t> RevocationStore::DropExpired(absl::Time now) {
  size_t dropped = 0;
  absl::Status persisted;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (Expired(it->second, now)) {
        it = entries_.erase(it);
        ++dropped;
      } else {
        ++it;
      }
    }
    if (dropped == 0) return 0;
    // Expired entries are dead either way: a failed write only leaves them on disk
    // until the next change, and Open() drops them again.
    persisted = Persist();
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  if (!persisted.ok()) return persisted;
  return dropped;
}

std::string RevocationStore::path() const { return path_; }

absl::Status RevocationStore::Persist() {
  std::string content;
  for (const auto& [key, entry] : entries_) {
    std::string line;
    auto status = google::protobuf::util::MessageToJsonString(entry, &line);
    if (!status.ok()) return absl::InternalError(status.ToString());
    absl::StrAppend(&content, line, "\n");
  }
  return WriteFileAtomically(options_.state_dir, path_, content);
}

}  // namespace tandem::controlplane
