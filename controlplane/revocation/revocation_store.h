#ifndef TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_
#define TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/revocation/revocation_backend.h"
#include "tandem/mesh_policy.pb.h"

namespace tandem::controlplane {

// Revoked certificate serials and SPIFFE IDs, kept in a RevocationBackend so they
// survive a restart and reach every replica. An entry lives until nothing it names can
// still be valid: a serial until its certificate's not-after, an identity for the CA's
// maximum TTL (every certificate issued before the revocation is dead by then).
//
// The backend holds the list as text, one proto3-JSON Revocation per line, sorted;
// standalone that is <state_dir>/revocations.jsonl (FileRevocationBackend), in a
// cluster a ConfigMap every replica shares (ConfigMapRevocationBackend). A revocation
// is in force once the backend has stored it, never before (a failed write is
// returned and changes nothing); a list another replica stored arrives with Reload.
//
// Threading: every method may be called from any thread. Reads take one mutex for a
// map lookup; writes are serialised by a second one and keep the first only to swap
// the map in, so a slow backend never stalls a certificate request.
class RevocationStore {
 public:
  struct Options {
    std::string state_dir;  // created 0700 if absent; refused if group/other can access
    absl::Duration max_ttl = absl::Hours(24);  // lifetime of an identity revocation
  };

  // Opens (or creates) the store in options.state_dir and loads it, dropping entries
  // expired at `now`. A corrupt file is refused, naming the file and line.
  static absl::StatusOr<std::unique_ptr<RevocationStore>> Open(Options options,
                                                               absl::Time now);
  // The same over any backend.
  static absl::StatusOr<std::unique_ptr<RevocationStore>> Open(
      std::unique_ptr<RevocationBackend> backend, absl::Duration max_ttl, absl::Time now);
  ~RevocationStore();

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

  // Replaces the list with `text`, the backend's content as another writer left it
  // (a watch event): true when that changed the list. A corrupt list is kDataLoss and
  // changes nothing.
  absl::StatusOr<bool> Reload(const std::string& text, absl::Time now);

  // Returns whether `spiffe_id` / `serial_hex` (normalised as above) is revoked.
  bool IsSpiffeIdRevoked(const std::string& spiffe_id, absl::Time now) const;
  bool IsSerialRevoked(const std::string& serial_hex, absl::Time now) const;

  // Returns the entries not expired at `now`, sorted (identities, then serials).
  std::vector<tandem::policy::v1::Revocation> Live(absl::Time now) const;
  // Drops the entries expired at `now`, here and in the backend; returns how many.
  absl::StatusOr<size_t> DropExpired(absl::Time now);

  // Returns a number that grows with every change (revocation added or dropped), so
  // a poller can tell whether to push. Any thread.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Makes `listener` (null: none) be called after every change of generation(), on the
  // thread that made the change, with no lock of this store held, so a pusher need not
  // wait for its next poll. Replaces the previous listener; once this returns, the
  // previous one is not running and will not run. Any thread; `listener` must not call
  // SetChangeListener.
  void SetChangeListener(std::function<void()> listener);
  // Returns where the store lives (the file's path, the ConfigMap's name).
  std::string path() const;

 private:
  using Entries = std::map<std::string, tandem::policy::v1::Revocation>;
  RevocationStore(absl::Duration max_ttl, std::unique_ptr<RevocationBackend> backend);
  absl::StatusOr<tandem::policy::v1::Revocation> Add(tandem::policy::v1::Revocation entry,
                                                     absl::Time now);
  // Writes edit(list) through the backend and takes what it stored as the list.
  absl::Status Write(const std::function<void(Entries*)>& edit, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Swaps `next` in; true (and a new generation) when it differs.
  bool Swap(Entries next);
  // Bumps generation() and tells the listener.
  void Changed();

  const absl::Duration max_ttl_;
  const std::string name_;
  std::unique_ptr<RevocationBackend> backend_ ABSL_PT_GUARDED_BY(write_mu_);
  std::atomic<uint64_t> generation_{0};
  absl::Mutex listener_mu_;  // taken after write_mu_, never with mu_
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
  absl::Mutex write_mu_;  // taken before mu_
  mutable absl::Mutex mu_;
  // Keyed "id:<spiffe id>" or "serial:<hex>", so listing order is stable.
  Entries entries_ ABSL_GUARDED_BY(mu_);
};

// Returns the serial normalised as X.509 prints it (lower-case hex, no leading zeros,
// no ':'), or kInvalidArgument saying what is wrong.
absl::StatusOr<std::string> NormalizeSerialHex(const std::string& serial_hex);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_STORE_H_
