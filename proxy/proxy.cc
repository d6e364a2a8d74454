#include "proxy/proxy.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"

namespace tandem::proxy {
namespace {

constexpr char kPolicyUpdatesHelp[] = "Mesh policies offered to the proxy, by result.";

}  // namespace

absl::StatusOr<std::unique_ptr<Proxy>> Proxy::Create(ProxyOptions options) {
  if (options.workers < 1) return absl::InvalidArgumentError("workers must be >= 1");
  return std::unique_ptr<Proxy>(new Proxy(std::move(options)));
}

Proxy::Proxy(ProxyOptions options)
    : options_(std::move(options)),
      tls_(TlsContextManager::Options{options_.trust_domain, options_.allow_tls12}),
      policy_(MeshPolicy::FromOptions(options_)),
      policy_accepted_(registry_.GetCounter("tandem_proxy_policy_updates_total",
                                            kPolicyUpdatesHelp,
                                            {{"result", "accepted"}})),
      policy_refused_(registry_.GetCounter("tandem_proxy_policy_updates_total",
                                           kPolicyUpdatesHelp, {{"result", "refused"}})),
      peer_labels_(options_.workload, options_.peer_label_sets) {
  RegisterMetrics();
  for (int i = 0; i < options_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(&options_, &tls_, &policy_, &connections_,
                                                &next_id_, &peer_labels_));
  }
}

absl::Status Proxy::ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                                const std::string& version) {
  absl::StatusOr<std::shared_ptr<const MeshPolicy>> built =
      MeshPolicy::FromProto(policy, version, options_.trust_domain, absl::Now());
  if (!built.ok()) {
    policy_refused_.Inc();
    return built.status();
  }
  policy_.Publish(*built);
  policy_accepted_.Inc();
  if ((*built)->ClosesOpenConnections()) {
    for (auto& worker : workers_) worker->CloseRevoked(*built);
  }
  return absl::OkStatus();
}

Proxy::~Proxy() { Stop(); }

absl::Status Proxy::Start() {
  for (auto& worker : workers_) {
    if (absl::Status s = worker->Listen(); !s.ok()) return s;
    // The first worker resolves port 0; the others join its SO_REUSEPORT group, and
    // the outbound listener's self-connection check compares against the real port.
    // No worker thread runs yet, so the workers read the updated options.
    options_.outbound = worker->ListenAddress(Direction::kOutbound);
    options_.inbound = worker->ListenAddress(Direction::kInbound);
  }
  for (auto& worker : workers_) worker->Start();
  listening_.store(true);
  return absl::OkStatus();
}

int Proxy::open_connections() const { return connections_.load(); }

int Proxy::Drain() {
  listening_.store(false);
  for (auto& worker : workers_) worker->StopAccepting();
  absl::Time deadline = absl::Now() + options_.drain_timeout;
  while (connections_.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  int cut = connections_.load();
  Stop();
  return cut;
}

void Proxy::Stop() {
  listening_.store(false);
  for (auto& worker : workers_) worker->Stop();
  for (auto& worker : workers_) worker->Join();
}

std::vector<const WorkerStats*> Proxy::worker_stats() const {
  std::vector<const WorkerStats*> stats;
  for (const auto& worker : workers_) stats.push_back(&worker->stats());
  return stats;
}

void Proxy::RegisterMetrics() {
  registry_.AddGaugeFunction(
      "tandem_proxy_ready",
      "1 when listeners are up and an unexpired certificate is in force.", {},
      [this] { return ready() ? 1.0 : 0.0; });
  registry_.AddGaugeFunction(
      "tandem_proxy_certificate_expiry_timestamp_seconds",
      "Not-after of the last accepted certificate (0: none).", {}, [this] {
        std::shared_ptr<TlsSnapshot> snapshot = tls_.Latest();
        return snapshot
                   ? static_cast<double>(absl::ToUnixSeconds(snapshot->leaf.not_after()))
                   : 0.0;
      });
  // With the expiry, the certificate's lifetime: alerts fire on the share of it left.
  registry_.AddGaugeFunction(
      "tandem_proxy_certificate_not_before_timestamp_seconds",
      "Not-before of the last accepted certificate (0: none).", {}, [this] {
        std::shared_ptr<TlsSnapshot> snapshot = tls_.Latest();
        return snapshot
                   ? static_cast<double>(absl::ToUnixSeconds(snapshot->leaf.not_before()))
                   : 0.0;
      });
  for (bool accepted : {true, false}) {
    registry_.AddCounterFunction(
        "tandem_proxy_secret_updates_total", "Secrets offered to the proxy, by result.",
        {{"result", accepted ? "accepted" : "refused"}}, [this, accepted] {
          return accepted ? tls_.updates_accepted() : tls_.updates_refused();
        });
  }
  registry_.AddGaugeFunction(
      "tandem_proxy_peer_label_sets",
      "istio_tcp_* label sets in use, the two overflow series included.", {},
      [this] { return static_cast<double>(peer_labels_.size()); });
  registry_.AddCollector([this] {
    constexpr char kCertificateInfo[] = "tandem_proxy_certificate_info";
    constexpr char kCertificateHelp[] = "The last accepted certificate.";
    if (std::shared_ptr<TlsSnapshot> snapshot = tls_.Latest()) {
      registry_.SetInfo(kCertificateInfo, kCertificateHelp,
                        {{"serial", snapshot->leaf.SerialHex()},
                         {"spiffe_id", snapshot->identity.ToString()},
                         {"generation", absl::StrCat(snapshot->generation)}});
    } else {
      registry_.ClearInfo(kCertificateInfo, kCertificateHelp);
    }
    std::shared_ptr<const MeshPolicy> policy = policy_.Current();
    registry_.SetInfo("tandem_proxy_policy_info", "The mesh policy in force.",
                      {{"version", policy->version()}, {"source", policy->source()}});
  });
}

std::string Proxy::RenderMetrics() const {
  std::vector<const PeerCache*> peers;
  for (const auto& worker : workers_) peers.push_back(&worker->peers());
  return RenderWorkerStats(worker_stats()) + RenderPeerMetrics(peer_labels_, peers) +
         registry_.RenderPrometheus();
}

}  // namespace tandem::proxy
