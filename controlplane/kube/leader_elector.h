#ifndef TANDEM_CONTROLPLANE_KUBE_LEADER_ELECTOR_H_
#define TANDEM_CONTROLPLANE_KUBE_LEADER_ELECTOR_H_

#include <atomic>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/kube_client.h"

namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// Elects one leader among replicas with a coordination.k8s.io/v1 Lease, following
// client-go's leaderelection: a candidate creates the Lease or takes it over once the
// holder's record (holderIdentity, renewTime, ...) has not changed for
// leaseDurationSeconds as seen on the candidate's own clock (no clock comparison
// between replicas); the holder renews renewTime every retry_period and stops leading
// when it could not renew for renew_deadline. Every write is a PUT with the
// resourceVersion read, so of two candidates racing, one gets 409 and stays a follower.
// Taking over increments leaseTransitions and sets acquireTime. Stop() releases a held
// Lease (holderIdentity cleared, leaseDurationSeconds 1) so a successor need not wait.
//
// Threading: Start/Stop/destructor on the owning thread; the loop runs on a thread of
// its own; is_leader() from any thread; TryAcquireOrRenew
// from one thread at a time (the loop's, or a test's before Start).
class LeaderElector {
 public:
  struct Options {
    const KubeClient* client = nullptr;  // outlives the elector
    std::string ns = "tandem-system";
    std::string name = "tandem-ca";
    std::string identity;  // unique per replica: the pod name
    absl::Duration lease_duration = absl::Seconds(15);
    absl::Duration renew_deadline = absl::Seconds(10);
    absl::Duration retry_period = absl::Seconds(2);
    // Sets the gauge tandem_ca_leader (1 while leading). Must outlive the elector.
    metrics::Registry* registry = nullptr;
  };
  static absl::StatusOr<std::unique_ptr<LeaderElector>> Create(Options options);
  ~LeaderElector();  // Stop()s

  void Start();
  void Stop();
  bool is_leader() const { return leader_.load(); }

  // One round: reads the Lease and creates, renews or takes it over when it may.
  // Returns whether this replica holds the Lease now; errors are the API's.
  absl::StatusOr<bool> TryAcquireOrRenew(absl::Time now);

 private:
  explicit LeaderElector(Options options);
  void SetLeader(bool leading);
  void Release();
  void Run();

  const Options options_;
  const std::string collection_;
  std::atomic<bool> leader_{false};
  std::thread thread_;
  // TryAcquireOrRenew's thread only: the last record seen and when (our clock).
  std::string observed_record_;
  absl::Time observed_at_ = absl::InfinitePast();
  absl::Mutex mu_;
  absl::CondVar stop_cv_;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
};

// Formats `t` as a Kubernetes MicroTime: RFC 3339 in UTC with six fractional digits.
std::string FormatMicroTime(absl::Time t);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_LEADER_ELECTOR_H_
