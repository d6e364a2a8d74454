#ifndef TANDEM_CONTROLPLANE_KUBE_INFORMER_H_
#define TANDEM_CONTROLPLANE_KUBE_INFORMER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/kube_client.h"
#include "nlohmann/json.hpp"

namespace tandem::controlplane {

// Keeps a local copy of a collection of Kubernetes objects the way client-go's
// reflector does: LIST, then WATCH from the list's resourceVersion; every event moves
// the resourceVersion on (BOOKMARKs too); when the server ends the watch it is resumed
// from there; when that version has expired (410) the collection is LISTed again and
// the difference to the copy is reported as events; other failures are retried with
// capped exponential backoff.
//
// Threading: Start/Stop/destructor on the owning thread; one thread of its own runs
// the loop and calls on_event; Get/List/synced/lists from any thread.
class Informer {
 public:
  enum class EventType { kAdded, kModified, kDeleted };
  using Handler = std::function<void(EventType type, const nlohmann::json& object)>;
  struct Options {
    const KubeClient* client = nullptr;  // outlives the informer
    std::string collection;  // e.g. "/api/v1/configmaps?fieldSelector=metadata.name%3Dx"
    // Called on the informer's thread after the copy changed. A relist reports what
    // changed since the copy (ADDED, MODIFIED, DELETED), never an unchanged object.
    Handler on_event;
    absl::Duration watch_timeout = absl::Minutes(5);  // timeoutSeconds of each watch
    absl::Duration max_backoff = absl::Seconds(10);
  };
  explicit Informer(Options options);
  ~Informer();  // Stop()s

  void Start();
  void Stop();

  // Returns the object "namespace/name" ("name" for cluster objects), if in the copy.
  std::optional<nlohmann::json> Get(const std::string& key) const;
  // Returns the copy, by key.
  std::map<std::string, nlohmann::json> List() const;
  // True once the first LIST is in the copy.
  bool synced() const { return synced_.load(); }
  // How many LISTs succeeded (the first, then one per expired watch); tests.
  uint64_t lists() const { return lists_.load(); }
  // The resourceVersion the next watch starts from; tests.
  std::string resource_version() const;

  // Returns the key of `object`: "namespace/name", or "name" without a namespace.
  static std::string KeyOf(const nlohmann::json& object);

 private:
  // One LIST, replacing the copy; reports the difference.
  absl::Status Relist();
  // One WATCH from resource_version_, applying events until it ends.
  absl::Status WatchOnce();
  void Apply(EventType type, const nlohmann::json& object);
  void Run();

  const Options options_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> lists_{0};
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::map<std::string, nlohmann::json> objects_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_INFORMER_H_
