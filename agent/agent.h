#ifndef TANDEM_AGENT_AGENT_H_
#define TANDEM_AGENT_AGENT_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/ca_client.h"
#include "agent/renewal_policy.h"
#include "common/secret_sink.h"

namespace tandem::agent {

struct AgentOptions {
  std::string trust_domain = "cluster.local";
  std::string ns = "default";
  std::string service_account = "default";
  // Projected service-account token; re-read before every request (kubelet rotates it).
  std::string token_file = "/var/run/secrets/tokens/istio-token";
  // Extra roots to trust beside the CA's (root rotation overlap); re-read each time.
  std::string extra_roots_file;
  int64_t requested_validity_seconds = 24 * 3600;
  RenewalPolicy policy;
};

// Where the workload certificate stands; exported as a metric and used for readiness.
enum class CertState { kNoCertificate = 0, kValid = 1, kExpired = 2 };

// Keeps a workload certificate fresh: generates a key in memory, asks the CA, checks
// the answer, hands it to a SecretSink (the SDS server), and renews on the schedule of
// NextRenewal(); failures back off with jitter and the current certificate is kept
// until it expires. One background thread; Start/Stop from the main thread; the
// accessors from any thread.
class Agent {
 public:
  Agent(AgentOptions options, CaClient* ca, SecretSink* sink);
  ~Agent();
  void Start();
  void Stop();

  CertState state() const;
  std::string RenderMetrics() const;
  uint64_t rotations() const { return rotations_ok_.load(); }

 private:
  void Run();
  // One attempt: returns OK when a new certificate was delivered.
  absl::Status RenewOnce();

  const AgentOptions options_;
  const std::string spiffe_id_;
  CaClient* ca_;
  SecretSink* sink_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> rotations_ok_{0}, rotations_failed_{0};
  std::atomic<uint64_t> ca_ok_{0}, ca_failed_{0};
  std::atomic<double> ca_seconds_sum_{0};
  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  absl::Time not_before_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time not_after_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string serial_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_AGENT_H_
