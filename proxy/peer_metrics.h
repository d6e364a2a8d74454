#ifndef TANDEM_PROXY_PEER_METRICS_H_
#define TANDEM_PROXY_PEER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/registry.h"
#include "common/spiffe_id.h"
#include "proxy/config.h"
#include "proxy/proxy_stats.h"

namespace tandem::proxy {

// Envoy's %RESPONSE_FLAGS% as Istio's response_flags label: "-" (none) or "UF"
// (upstream connection failure).
enum class ResponseFlags { kNone = 0, kUpstreamFailure = 1, kCount };
const char* ResponseFlagsName(ResponseFlags flags);

// Istio's labels of the istio_tcp_* metrics for one connection, in the order Istio's
// "Istio Standard Metrics" page lists them. `own_principal`/`peer_principal` are the
// SPIFFE IDs of an mTLS connection whose handshake completed, empty otherwise. The
// peer's workload and namespace are its SPIFFE ID's sa and ns (Istio learns the peer's
// real workload by metadata exchange, which tandem does not do); every label tandem
// cannot know is "unknown", Istio's convention.
metrics::Labels IstioTcpLabels(const WorkloadLabels& self, Direction direction, Mode mode,
                               ResponseFlags flags, absl::string_view own_principal,
                               absl::string_view peer_principal);

// One label set's counts on one worker: written only by that worker (load + store),
// read by scrapes.
struct PeerCell {
  std::atomic<uint64_t> opened{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> received{0};  // request bytes: from downstream
  std::atomic<uint64_t> sent{0};      // response bytes: from upstream
};

// The label sets the proxy has seen, each given a small id that indexes every worker's
// PeerCell array. Bounded: once `limit` sets are in, further ones get the overflow id
// of their direction (ids 0 and 1), whose peer-side labels read "overflow".
//
// Threading: any thread. Intern() takes the mutex; workers call it only the first time
// they see a label set (PeerCache), so a connection's hot path never does.
class PeerLabelTable {
 public:
  PeerLabelTable(WorkloadLabels self, size_t limit);

  // Ids 0 (outbound) and 1 (inbound) are the overflow series.
  static uint32_t OverflowId(Direction direction) {
    return static_cast<uint32_t>(direction);
  }
  // Every id is below capacity(): the size of a worker's PeerCell array.
  size_t capacity() const { return limit_ + 2; }

  // Returns the id of this label set, adding it while there is room, else the overflow
  // id. Any thread.
  uint32_t Intern(Direction direction, Mode mode, ResponseFlags flags,
                  absl::string_view own_principal, absl::string_view peer_principal);
  // True once the table is full: new sets go straight to overflow. Any thread, no lock.
  bool full() const { return full_.load(std::memory_order_acquire); }
  // The label sets added, overflow series included. Any thread.
  size_t size() const;
  // The label sets by id, for scrapes. Any thread.
  std::vector<metrics::Labels> Labels() const;

 private:
  const WorkloadLabels self_;
  const size_t limit_;
  std::atomic<bool> full_{false};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<metrics::Labels> labels_ ABSL_GUARDED_BY(mu_);
};

// One worker's view of the label table: a cache from (direction, mode, flags, peer) to
// that label set's PeerCell, and the cells themselves (allocated once, never moved).
//
// Threading: the owning worker's loop thread only, except cells(), which scrapes read.
class PeerCache {
 public:
  // `table` outlives the cache.
  explicit PeerCache(PeerLabelTable* table);

  // Returns the cell of this connection's label set. A cache hit takes no lock and
  // allocates nothing; a miss asks the table (once per label set and worker, and never
  // once the table is full). `own_principal` must come with `own_generation`, the TLS
  // snapshot's generation: the cache is dropped when our own identity changes. Counts
  // a fold into overflow in `stats`.
  PeerCell* Resolve(Direction direction, Mode mode, ResponseFlags flags,
                    uint64_t own_generation, const SpiffeId* own_principal,
                    absl::string_view peer_principal, WorkerStats* stats);

  // Any thread: the cell of label-set id `id` (below the table's capacity).
  const PeerCell& cell(uint32_t id) const { return cells_[id]; }

 private:
  using Map = absl::flat_hash_map<std::string, uint32_t>;
  Map& MapFor(Direction direction, Mode mode, ResponseFlags flags) {
    return maps_[static_cast<int>(direction)][static_cast<int>(mode)]
                [static_cast<int>(flags)];
  }

  PeerLabelTable* const table_;
  const std::unique_ptr<PeerCell[]> cells_;
  Map maps_[2][2][static_cast<int>(ResponseFlags::kCount)];
  uint64_t own_generation_ = 0;
  std::string own_principal_;
};

// Renders istio_tcp_{connections_opened,connections_closed,received_bytes,sent_bytes}
// _total by folding every worker's cells for each label set of `table`.
std::string RenderPeerMetrics(const PeerLabelTable& table,
                              const std::vector<const PeerCache*>& workers);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_PEER_METRICS_H_
