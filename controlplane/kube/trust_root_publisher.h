#ifndef TANDEM_CONTROLPLANE_KUBE_TRUST_ROOT_PUBLISHER_H_
#define TANDEM_CONTROLPLANE_KUBE_TRUST_ROOT_PUBLISHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/informer.h"
#include "controlplane/kube/kube_client.h"

namespace tandem::metrics {
class Counter;
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// Keeps a ConfigMap holding the mesh's trust bundle (`configmap_name`, key
// `ca-cert.pem`: every root during a rotation) in every namespace the CA serves, as
// istiod keeps istio-ca-root-cert, so sidecars mount it from their own namespace.
//
// - Served namespaces: those matching `namespace_selector` (a label selector, e.g.
//   "tandem-injection=enabled"), not being deleted.
// - It watches those namespaces and, across all namespaces, the ConfigMaps with our
//   name (fieldSelector metadata.name: RBAC can then limit it to that name). A new
//   namespace gets its ConfigMap; an edited or deleted one is put back, within one
//   watch event's latency; a full pass every resync_interval repairs what a lost event
//   would miss.
// - Only the replica for which `may_write()` is true writes (the Lease's leader); one
//   that becomes the writer checks every served namespace at once. Writes are
//   read-modify-write with the resourceVersion (KubeClient::Update), so a concurrent edit
//   is retried, never lost.
//
// Threading: Create/Start/Stop/destructor on the owning thread; two informer threads
// and one worker thread of its own; Resync() and written() from any thread.
class TrustRootPublisher {
 public:
  struct Options {
    const KubeClient* client = nullptr;  // outlives the publisher
    // Returns the bundle every ConfigMap holds; read at every check, so a root rotation
    // (CaCore::Reload) reaches the ConfigMaps within bundle_poll. Any thread.
    std::function<std::string()> bundle;
    absl::Duration bundle_poll = absl::Seconds(5);
    std::string configmap_name = "tandem-ca-root";
    std::string key = "ca-cert.pem";
    std::string namespace_selector = "tandem-injection=enabled";
    std::function<bool()> may_write;  // null: always (a single replica)
    absl::Duration resync_interval = absl::Minutes(1);
    absl::Duration watch_timeout = absl::Minutes(5);
    // Counts tandem_ca_trust_root_syncs_total{result}: created, updated, unchanged,
    // error. Must outlive the publisher.
    metrics::Registry* registry = nullptr;
  };
  static absl::StatusOr<std::unique_ptr<TrustRootPublisher>> Create(Options options);
  ~TrustRootPublisher();  // Stop()s

  void Start();
  void Stop();
  // ConfigMaps created or updated so far (tests).
  uint64_t written() const { return written_.load(); }

 private:
  explicit TrustRootPublisher(Options options);
  void MarkDirty(const std::string& ns);
  // Creates or repairs the ConfigMap in `ns`; false when it must be tried again.
  bool Reconcile(const std::string& ns, const std::string& bundle);
  void Run();
  metrics::Counter* Syncs(const char* result) const;
  bool Serves(const std::string& ns) const;

  const Options options_;
  std::unique_ptr<Informer> namespaces_;
  std::unique_ptr<Informer> configmaps_;
  std::atomic<uint64_t> written_{0};
  std::thread worker_;
  absl::Mutex mu_;
  absl::CondVar wake_;
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  bool resync_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_TRUST_ROOT_PUBLISHER_H_
