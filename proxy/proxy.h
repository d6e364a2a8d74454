#ifndef TANDEM_PROXY_PROXY_H_
#define TANDEM_PROXY_PROXY_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/registry.h"
#include "proxy/config.h"
#include "proxy/mesh_policy.h"
#include "proxy/mesh_policy_holder.h"
#include "proxy/peer_metrics.h"
#include "proxy/policy_sink.h"
#include "proxy/tls_context_manager.h"
#include "proxy/worker.h"

namespace tandem::proxy {

// The data plane: N workers with their listeners, and the TLS context manager and mesh
// policy they share. Used by main.cc and, in-process, by tests. Methods are for the
// owning (main) thread unless they say otherwise.
class Proxy : public PolicySink {
 public:
  static absl::StatusOr<std::unique_ptr<Proxy>> Create(ProxyOptions options);
  ~Proxy() override;

  // Opens the listeners on every worker and starts their threads. A listener on port 0
  // gets a free port, which every worker shares; options().outbound and .inbound hold
  // the bound addresses from then on.
  absl::Status Start();
  // Stops accepting, waits up to the drain timeout for open connections to finish,
  // then stops the workers (closing what is left). Returns the connections cut off.
  int Drain();
  void Stop();

  // Any thread.
  TlsContextManager& tls() { return tls_; }
  // Any thread. Builds and validates `policy`, publishes it for new connections, and
  // when it revokes peers with close_open_connections, has every worker close theirs.
  absl::Status ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                           const std::string& version) override;
  // Any thread: the policy in force.
  std::shared_ptr<const MeshPolicy> policy() const { return policy_.Current(); }
  const ProxyOptions& options() const { return options_; }
  bool listening() const { return listening_.load(); }
  // Ready = listeners up and an unexpired certificate in force.
  bool ready() const { return listening_.load() && tls_.Current() != nullptr; }
  int open_connections() const;
  // Every worker's counters, to fold (metrics, admin). Any thread.
  std::vector<const WorkerStats*> worker_stats() const;
  // Prometheus text: the workers' data-path counters (folded here) and the registry's
  // families (TLS and policy state). Any thread.
  std::string RenderMetrics() const;

 private:
  explicit Proxy(ProxyOptions options);
  // Registers the families read from TLS and policy state at scrape time.
  void RegisterMetrics();

  // Constant once Start() has resolved the listeners' port 0.
  ProxyOptions options_;
  TlsContextManager tls_;
  MeshPolicyHolder policy_;
  // Everything but the data path; its callbacks read tls_, policy_ and listening_.
  metrics::Registry registry_;
  metrics::Counter& policy_accepted_;
  metrics::Counter& policy_refused_;
  std::atomic<int> connections_{0};
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> listening_{false};
  PeerLabelTable peer_labels_;  // istio_tcp_* label sets, shared by the workers
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_PROXY_H_
