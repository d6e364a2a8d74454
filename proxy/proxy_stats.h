#ifndef TANDEM_PROXY_PROXY_STATS_H_
#define TANDEM_PROXY_PROXY_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::proxy {

enum class Direction { kOutbound = 0, kInbound = 1 };
enum class Mode { kMtls = 0, kPlaintext = 1 };

// Why a connection was refused or failed before pumping; the `reason` label.
enum class FailReason {
  kMalformed = 0,
  kUnknownCa,
  kExpired,
  kNotYetValid,
  kBadIdentity,
  kNotAllowed,
  kPlaintextRefused,
  kTimeout,
  kNotAuthorized,
  kTlsError,
  kNoCertificate,
  kWrongServer,
  kRevoked,
  kCount
};
const char* FailReasonName(FailReason reason);

// A fixed-bucket histogram whose owner thread records without locks; scrapes read it.
class WorkerHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 10, 60};
  void Observe(double seconds);
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};
  std::atomic<uint64_t> count{0};
  std::atomic<double> sum{0};
};

// Counters one worker thread owns: written only by that thread (relaxed stores, no
// lock, no allocation), read by the metrics scrape, which folds all workers.
struct WorkerStats {
  std::atomic<uint64_t> opened[2][2]{};  // [direction][mode]
  std::atomic<uint64_t> closed[2][2]{};
  std::atomic<int64_t> active[2][2]{};
  std::atomic<uint64_t> bytes_from_downstream[2]{};  // [direction]
  std::atomic<uint64_t> bytes_from_upstream[2]{};
  std::atomic<uint64_t> failures[2][static_cast<int>(FailReason::kCount)]{};
  std::atomic<uint64_t> connect_failures[2]{};
  std::atomic<uint64_t> over_limit{0};
  std::atomic<uint64_t> accept_paused{0};  // accept() out of descriptors
  std::atomic<uint64_t> resumed_handshakes{0};
  // Open connections closed because a new policy revoked their peer.
  std::atomic<uint64_t> revoked_closed{0};
  // Connections whose istio_tcp_* label set found the table full (PeerLabelTable).
  std::atomic<uint64_t> peer_overflow{0};
  WorkerHistogram handshake_seconds[2];
  WorkerHistogram connection_seconds[2];

  // Owner thread only: single writer, so load+store beats a locked RMW.
  static void Add(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void Add(std::atomic<int64_t>& c, int64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// Renders the proxy's Prometheus families by folding every worker's stats.
std::string RenderWorkerStats(const std::vector<const WorkerStats*>& workers);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_PROXY_STATS_H_
