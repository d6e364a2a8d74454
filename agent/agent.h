#ifndef TANDEM_AGENT_AGENT_H_
#define TANDEM_AGENT_AGENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/ca_client.h"
#include "agent/renewal_policy.h"
#include "common/secret_sink.h"

namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::agent {

struct AgentOptions {
  std::string trust_domain = "cluster.local";
  std::string ns = "default";
  std::string service_account = "default";
  // Projected service-account token; re-read before every request (kubelet rotates it).
  std::string token_file = "/var/run/secrets/tokens/istio-token";
  // Extra roots to trust beside the CA's (root rotation overlap); re-read each time.
  std::string extra_roots_file;
  // Roots the issued chain must verify against (the CA root the operator trusts);
  // empty accepts whatever root the CA returns.
  std::string pinned_roots_pem;
  // When set, re-read before every renewal and used instead of pinned_roots_pem (the
  // agent's --ca-root: in Kubernetes the tandem-ca-root ConfigMap, which holds every
  // root during a root rotation).
  std::string pinned_roots_file;
  int64_t requested_validity_seconds = 24 * 3600;
  RenewalPolicy policy;
  // Where the agent's metrics live; null means metrics::Registry::Default(). Must
  // outlive the Agent.
  metrics::Registry* registry = nullptr;
  // Called on the renewal thread after each certificate delivered to the sink (its
  // serial and not-after); empty: nobody is told. main.cc tells the policy relay.
  std::function<void(const std::string& serial_hex, absl::Time not_after)> on_certificate;
};

// Where the workload certificate stands; exported as
// tandem_agent_certificate_state{state} and used for readiness.
//   kNoCertificate: nothing delivered yet (not ready).
//   kValid:         a certificate is in force and not yet due for renewal.
//   kRenewing:      a certificate is in force, its renewal is due or failing.
//   kExpired:       the last certificate ran out before a renewal succeeded.
enum class CertState { kNoCertificate, kValid, kRenewing, kExpired };
std::string_view CertStateName(CertState state);

// Why a renewal failed; the `reason` label of tandem_agent_rotation_failures_total.
enum class RenewalFailure { kKey, kToken, kCa, kBadResponse, kTrustBundle, kSinkRefused };
std::string_view RenewalFailureName(RenewalFailure reason);

// Keeps a workload certificate fresh: generates a key in memory, asks the CA, checks
// the answer, hands it to a SecretSink (the SDS server), and renews on the schedule of
// NextRenewal(); failures back off with jitter and the current certificate is kept
// until it expires.
//
// Threading: one background thread (started by Start) does all renewals and calls the
// CaClient and the SecretSink. Start/Stop from the owning (main) thread; state() and
// the metrics from any thread.
class Agent {
 public:
  Agent(AgentOptions options, CaClient* ca, SecretSink* sink);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Main thread. Starts the renewal thread; the first request goes out at once.
  void Start();
  // Main thread. Idempotent; returns once the renewal thread has exited, which may
  // wait for a CA call in flight: CaClient::Shutdown() first makes that prompt.
  void Stop();

  // Any thread. Exact at the time of the call (expiry is checked against the clock).
  CertState state() const;
  // Any thread: true while a certificate is in force (kValid or kRenewing).
  bool ready() const;
  // Any thread: certificates delivered to the sink so far.
  uint64_t rotations() const { return rotations_ok_.load(); }
  // Any thread: the CA answered another call of this agent (main.cc: the policy
  // relay's stream, on the same connection, got its first response). A renewal that
  // failed because the CA was unreachable, and is waiting out its backoff, then
  // retries within policy.reachable_jitter (RetryWhenReachable) instead of sleeping
  // up to max_backoff past a CA that is back; any other wait is unchanged, and a retry
  // that fails again backs off as before.
  void CaReachable();
  const std::string& spiffe_id() const { return spiffe_id_; }

  struct Metrics;

 private:
  void Run();
  // One attempt: OK when a new certificate was delivered; otherwise why not.
  absl::Status RenewOnce(RenewalFailure* reason);
  CertState StateLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishStateLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AgentOptions options_;
  const std::string spiffe_id_;
  CaClient* const ca_;
  SecretSink* const sink_;
  const std::unique_ptr<Metrics> metrics_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> rotations_ok_{0};
  absl::Duration last_ca_call_;  // renewal thread only: the last CA call's duration

  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  // kNoCertificate, kValid or kRenewing; kExpired is derived from not_after_.
  CertState phase_ ABSL_GUARDED_BY(mu_) = CertState::kNoCertificate;
  absl::Time not_before_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time not_after_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string serial_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  // The last attempt failed without reaching the CA (ReachedCa false).
  bool unreachable_ ABSL_GUARDED_BY(mu_) = false;
  // CaReachable() came while unreachable_; the wait before the retry takes it.
  bool ca_answered_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_AGENT_H_
