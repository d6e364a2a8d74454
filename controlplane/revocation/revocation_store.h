#ifndef TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_
#define TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tandem/mesh_policy.pb.h"

namespace tandem::controlplane {

// Revoked certificate serials and SPIFFE IDs, persisted in a state directory so they
// survive a restart. An entry lives until nothing it names can still be valid: a
// serial until its certificate's not-after, an identity for the CA's maximum TTL
// (every certificate issued before the revocation is dead by then).
//
// Persistence: <state_dir>/revocations.jsonl, one proto3-JSON Revocation per line,
// mode 0600 in a 0700 directory, replaced as a whole on every change by writing a
// temporary file, fsync, rename, fsync of the directory: a crash leaves the old or the
// new list, never half of one.
//
// Threading: every method may be called from any thread (one mutex; the file is
// written under it, which is rare and small).
class RevocationStore {
 public:
  struct Options {
    std::string state_dir;  // created 0700 if absent; refused if group/other can access
    absl::Duration max_ttl = absl::Hours(24);  // lifetime of an identity revocation
  };

  // Opens (or creates) the store and loads it, dropping entries expired at `now`.
  // A corrupt file is refused, naming the file and line.
  static absl::StatusOr<std::unique_ptr<RevocationStore>> Open(Options options,
                                                               absl::Time now);

  // Revokes the certificate with serial `serial_hex` (hex, any case, leading zeros
  // and ':' separators allowed; stored as X.509 prints it) until `not_after`.
  // kInvalidArgument for a malformed serial or a not-after already past.
  absl::StatusOr<tandem::policy::v1::Revocation> RevokeSerial(
      const std::string& serial_hex, absl::Time not_after, const std::string& reason,
      bool close_open_connections, absl::Time now);
  // Revokes every certificate of `spiffe_id`, and refuses it new ones, until
  // now + max_ttl. kInvalidArgument when it is not a SPIFFE ID.
  absl::StatusOr<tandem::policy::v1::Revocation> RevokeSpiffeId(
      const std::string& spiffe_id, const std::string& reason,
      bool close_open_connections, absl::Time now);

  // Returns whether `spiffe_id` / `serial_hex` (normalised as above) is revoked.
  bool IsSpiffeIdRevoked(const std::string& spiffe_id, absl::Time now) const;
  bool IsSerialRevoked(const std::string& serial_hex, absl::Time now) const;

  // Returns the entries not expired at `now`, sorted (identities, then serials).
  std::vector<tandem::policy::v1::Revocation> Live(absl::Time now) const;
  // Drops the entries expired at `now` and persists; returns how many.
  absl::StatusOr<size_t> DropExpired(absl::Time now);

  // Returns a number that grows with every change (revocation added or dropped), so
  // a poller can tell whether to push. Any thread.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Returns the file the store lives in.
  std::string path() const;

 private:
  RevocationStore(Options options, std::string path);
  // Writes entries_ to the file atomically (see the class comment).
  absl::Status Persist() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<tandem::policy::v1::Revocation> Add(
      tandem::policy::v1::Revocation entry);

  const Options options_;
  const std::string path_;
  std::atomic<uint64_t> generation_{0};
  mutable absl::Mutex mu_;
  // Keyed "id:<spiffe id>" or "serial:<hex>", so listing order is stable.
  std::map<std::string, tandem::policy::v1::Revocation> entries_ ABSL_GUARDED_BY(mu_);
};

// Returns the serial normalised as X.509 prints it (lower-case hex, no leading zeros,
// no ':'), or kInvalidArgument saying what is wrong.
absl::StatusOr<std::string> NormalizeSerialHex(const std::string& serial_hex);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_
