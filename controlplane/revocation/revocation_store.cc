#include "controlplane/revocation/revocation_store.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/spiffe_id.h"
#include "controlplane/revocation/file_revocation_backend.h"

namespace tandem::controlplane {
namespace {

using tandem::policy::v1::Revocation;
using Entries = std::map<std::string, Revocation>;

constexpr size_t kMaxSerialHexDigits = 40;  // RFC 5280: at most 20 octets

std::string KeyOf(const Revocation& entry) {
  return entry.has_serial_hex() ? absl::StrCat("serial:", entry.serial_hex())
                                : absl::StrCat("id:", entry.spiffe_id());
}

bool Expired(const Revocation& entry, absl::Time now) {
  return absl::FromUnixSeconds(entry.expires_unix_seconds()) <= now;
}

// Parses the backend's text, leaving out entries expired at `now`. A line that is not a
// revocation is kDataLoss naming `name` and the line.
absl::StatusOr<Entries> Parse(const std::string& text, const std::string& name,
                              absl::Time now) {
  Entries entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    Revocation entry;
    google::protobuf::util::JsonParseOptions strict;
    auto parsed = google::protobuf::util::JsonStringToMessage(
        std::string(line.data(), line.size()), &entry, strict);
    if (!parsed.ok() || entry.target_case() == Revocation::TARGET_NOT_SET) {
      return absl::DataLossError(
          absl::StrCat(name, ":", line_number, ": not a revocation entry",
                       parsed.ok() ? "" : absl::StrCat(" (", parsed.ToString(), ")"),
                       "; fix or remove the line"));
    }
    if (!Expired(entry, now)) entries[KeyOf(entry)] = std::move(entry);
  }
  return entries;
}

absl::StatusOr<std::string> Serialize(const Entries& entries) {
  std::string content;
  for (const auto& [key, entry] : entries) {
    std::string line;
    auto status = google::protobuf::util::MessageToJsonString(entry, &line);
    if (!status.ok()) return absl::InternalError(status.ToString());
    absl::StrAppend(&content, line, "\n");
  }
  return content;
}

bool SameEntries(const Entries& a, const Entries& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first ||
        i->second.SerializeAsString() != j->second.SerializeAsString()) {
      return false;
    }
  }
  return true;
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

RevocationStore::RevocationStore(absl::Duration max_ttl,
                                 std::unique_ptr<RevocationBackend> backend)
    : max_ttl_(max_ttl), name_(backend->name()), backend_(std::move(backend)) {}

RevocationStore::~RevocationStore() = default;

absl::StatusOr<std::unique_ptr<RevocationStore>> RevocationStore::Open(Options options,
                                                                       absl::Time now) {
  absl::StatusOr<std::unique_ptr<FileRevocationBackend>> file =
      FileRevocationBackend::Create(options.state_dir);
  if (!file.ok()) return file.status();
  return Open(*std::move(file), options.max_ttl, now);
}

absl::StatusOr<std::unique_ptr<RevocationStore>> RevocationStore::Open(
    std::unique_ptr<RevocationBackend> backend, absl::Duration max_ttl, absl::Time now) {
  absl::StatusOr<std::string> text = backend->Load();
  if (!text.ok()) return text.status();
  std::unique_ptr<RevocationStore> store(
      new RevocationStore(max_ttl, std::move(backend)));
  absl::StatusOr<Entries> entries = Parse(*text, store->name_, now);
  if (!entries.ok()) return entries.status();
  absl::StatusOr<std::string> live = Serialize(*entries);
  if (!live.ok()) return live.status();
  {
    absl::MutexLock lock(&store->mu_);
    store->entries_ = *std::move(entries);
  }
  if (*live != *text) {
    // Expired entries were left out: store the list without them.
    absl::MutexLock write(&store->write_mu_);
    if (absl::Status s = store->Write([](Entries*) {}, now); !s.ok()) return s;
  }
  store->generation_.store(0);  // a fresh store starts at 0, whatever it loaded
  return store;
}

absl::Status RevocationStore::Write(const std::function<void(Entries*)>& edit,
                                    absl::Time now) {
  absl::StatusOr<std::string> stored =
      backend_->Update([&](const std::string& current) -> absl::StatusOr<std::string> {
        absl::StatusOr<Entries> entries = Parse(current, name_, now);
        if (!entries.ok()) return entries.status();
        edit(&*entries);
        // Expired entries are left out, so a write also prunes the stored list; an
        // unchanged list is not written (Update), so replicas pruning the same list
        // write it once.
        return Serialize(*entries);
      });
  if (!stored.ok()) return stored.status();
  absl::StatusOr<Entries> entries = Parse(*stored, name_, now);
  if (!entries.ok()) return entries.status();
  Swap(*std::move(entries));
  return absl::OkStatus();
}

bool RevocationStore::Swap(Entries next) {
  {
    absl::MutexLock lock(&mu_);
    if (SameEntries(entries_, next)) return false;
    entries_ = std::move(next);
  }
  Changed();
  return true;
}

void RevocationStore::Changed() {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  absl::MutexLock lock(&listener_mu_);
  if (listener_) listener_();
}

void RevocationStore::SetChangeListener(std::function<void()> listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
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
  return Add(std::move(entry), now);
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
  entry.set_expires_unix_seconds(absl::ToUnixSeconds(now + max_ttl_) + 1);
  entry.set_reason(reason);
  entry.set_close_open_connections(close_open_connections);
  return Add(std::move(entry), now);
}

absl::StatusOr<Revocation> RevocationStore::Add(Revocation entry, absl::Time now) {
  const std::string key = KeyOf(entry);
  Revocation stored_entry;
  absl::MutexLock write(&write_mu_);
  absl::Status s = Write(
      [&](Entries* entries) {
        auto it = entries->find(key);
        if (it != entries->end()) {
          // Revoking again never shortens an entry.
          entry.set_expires_unix_seconds(
              std::max(entry.expires_unix_seconds(), it->second.expires_unix_seconds()));
        }
        (*entries)[key] = entry;
        stored_entry = entry;
      },
      now);
  if (!s.ok()) return s;  // not stored: not in force either
  return stored_entry;
}

absl::StatusOr<bool> RevocationStore::Reload(const std::string& text, absl::Time now) {
  absl::StatusOr<Entries> entries = Parse(text, name_, now);
  if (!entries.ok()) return entries.status();
  return Swap(*std::move(entries));
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
  }
  if (dropped == 0) return 0;
  Changed();
  // Expired entries are dead either way: a failed write only leaves them stored until
  // the next change, and every reader drops them again.
  absl::MutexLock write(&write_mu_);
  if (absl::Status s = Write([](Entries*) {}, now); !s.ok()) return s;
  return dropped;
}

std::string RevocationStore::path() const { return name_; }

}  // namespace tandem::controlplane
