#include "proxy/peer_metrics.h"

#include "absl/strings/str_cat.h"
#include "common/spiffe_id.h"

namespace tandem::proxy {
namespace {

constexpr char kUnknown[] = "unknown";
constexpr char kOverflow[] = "overflow";

// The peer's side as tandem can know it: its SPIFFE ID's service account stands for
// the workload name, its namespace for the workload namespace.
struct PeerSide {
  std::string principal = kUnknown;
  std::string workload = kUnknown;
  std::string namespace_ = kUnknown;
};

PeerSide PeerOf(absl::string_view principal) {
  PeerSide peer;
  if (principal.empty()) return peer;
  peer.principal = std::string(principal);
  if (absl::StatusOr<SpiffeId> id =
          SpiffeId::Parse(std::string_view(principal.data(), principal.size()));
      id.ok()) {
    if (std::string sa = id->KubernetesServiceAccount(); !sa.empty()) peer.workload = sa;
    if (std::string ns = id->KubernetesNamespace(); !ns.empty()) peer.namespace_ = ns;
  }
  return peer;
}

metrics::Labels Build(const WorkloadLabels& self, Direction direction, Mode mode,
                      ResponseFlags flags, absl::string_view own_principal,
                      const PeerSide& peer) {
  const bool source = direction == Direction::kOutbound;
  const std::string own = own_principal.empty() ? kUnknown : std::string(own_principal);
  // Istio: mutual_tls (or none) only as the destination sees it; the source reports
  // unknown.
  const char* security = source ? kUnknown : mode == Mode::kMtls ? "mutual_tls" : "none";
  // Our side is the source on outbound connections, the destination on inbound ones.
  const std::string& src_principal = source ? own : peer.principal;
  const std::string& dst_principal = source ? peer.principal : own;
  const std::string unknown = kUnknown;
  return {
      {"reporter", source ? "source" : "destination"},
      {"source_workload", source ? self.name : peer.workload},
      {"source_workload_namespace", source ? self.namespace_ : peer.namespace_},
      {"source_principal", src_principal},
      {"source_app", source ? self.app : unknown},
      {"source_version", source ? self.version : unknown},
      {"destination_workload", source ? peer.workload : self.name},
      {"destination_workload_namespace", source ? peer.namespace_ : self.namespace_},
      {"destination_principal", dst_principal},
      {"destination_app", source ? unknown : self.app},
      {"destination_version", source ? unknown : self.version},
      // tandem sees addresses, not Services: it cannot name the destination service.
      {"destination_service", unknown},
      {"destination_service_name", unknown},
      {"destination_service_namespace", unknown},
      {"request_protocol", "tcp"},
      {"connection_security_policy", security},
      {"response_flags", ResponseFlagsName(flags)},
      {"source_canonical_service", source ? self.canonical_service : unknown},
      {"source_canonical_revision", source ? self.canonical_revision : unknown},
      {"destination_canonical_service", source ? unknown : self.canonical_service},
      {"destination_canonical_revision", source ? unknown : self.canonical_revision},
      {"source_cluster", source ? self.cluster : unknown},
      {"destination_cluster", source ? unknown : self.cluster},
  };
}

}  // namespace

const char* ResponseFlagsName(ResponseFlags flags) {
  return flags == ResponseFlags::kUpstreamFailure ? "UF" : "-";
}

metrics::Labels IstioTcpLabels(const WorkloadLabels& self, Direction direction, Mode mode,
                               ResponseFlags flags, absl::string_view own_principal,
                               absl::string_view peer_principal) {
  return Build(self, direction, mode, flags, own_principal, PeerOf(peer_principal));
}

PeerLabelTable::PeerLabelTable(WorkloadLabels self, size_t limit)
    : self_(std::move(self)), limit_(limit) {
  PeerSide overflow{kOverflow, kOverflow, kOverflow};
  for (Direction d : {Direction::kOutbound, Direction::kInbound}) {
    metrics::Labels labels =
        Build(self_, d, Mode::kMtls, ResponseFlags::kNone, {}, overflow);
    for (auto& [name, value] : labels) {
      if (name == "connection_security_policy") value = kUnknown;
    }
    labels_.push_back(std::move(labels));
  }
  if (limit_ == 0) full_.store(true);
}

uint32_t PeerLabelTable::Intern(Direction direction, Mode mode, ResponseFlags flags,
                                absl::string_view own_principal,
                                absl::string_view peer_principal) {
  std::string key =
      absl::StrCat(static_cast<int>(direction), static_cast<int>(mode),
                   static_cast<int>(flags), "\n", own_principal, "\n", peer_principal);
  absl::MutexLock lock(&mu_);
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  if (ids_.size() >= limit_) {
    full_.store(true, std::memory_order_release);
    return OverflowId(direction);
  }
  uint32_t id = static_cast<uint32_t>(labels_.size());
  labels_.push_back(
      IstioTcpLabels(self_, direction, mode, flags, own_principal, peer_principal));
  ids_.emplace(std::move(key), id);
  if (ids_.size() >= limit_) full_.store(true, std::memory_order_release);
  return id;
}

size_t PeerLabelTable::size() const {
  absl::MutexLock lock(&mu_);
  return labels_.size();
}

std::vector<metrics::Labels> PeerLabelTable::Labels() const {
  absl::MutexLock lock(&mu_);
  return labels_;
}

PeerCache::PeerCache(PeerLabelTable* table)
    : table_(table), cells_(std::make_unique<PeerCell[]>(table->capacity())) {}

PeerCell* PeerCache::Resolve(Direction direction, Mode mode, ResponseFlags flags,
                             uint64_t own_generation, const SpiffeId* own_principal,
                             absl::string_view peer_principal, WorkerStats* stats) {
  // Our own identity is part of every mTLS label set: drop the cache if it changed
  // (only on a new TLS generation is it rendered and compared).
  if (own_principal != nullptr && own_generation != own_generation_) {
    own_generation_ = own_generation;
    std::string own = own_principal->ToString();
    if (own != own_principal_) {
      own_principal_ = std::move(own);
      for (auto& by_mode : maps_)
        for (auto& by_flags : by_mode)
          for (Map& map : by_flags) map.clear();
    }
  }
  Map& map = MapFor(direction, mode, flags);
  if (auto it = map.find(peer_principal); it != map.end()) return &cells_[it->second];
  uint32_t id = PeerLabelTable::OverflowId(direction);
  if (!table_->full()) {
    id = table_->Intern(direction, mode, flags,
                        own_principal != nullptr ? own_principal_ : absl::string_view(),
                        peer_principal);
  }
  if (id == PeerLabelTable::OverflowId(direction)) {
    // Not cached: the cache stays as bounded as the table.
    WorkerStats::Add(stats->peer_overflow, 1);
  } else {
    map.emplace(std::string(peer_principal), id);
  }
  return &cells_[id];
}

std::string RenderPeerMetrics(const PeerLabelTable& table,
                              const std::vector<const PeerCache*>& workers) {
  struct Family {
    const char* name;
    const char* help;
    std::atomic<uint64_t> PeerCell::*member;
  };
  static const Family kFamilies[] = {
      {"istio_tcp_connections_closed_total",
       "Connections closed (Istio standard metric).", &PeerCell::closed},
      {"istio_tcp_connections_opened_total",
       "Connections opened (Istio standard metric).", &PeerCell::opened},
      {"istio_tcp_received_bytes_total",
       "Request bytes received, from the downstream (Istio standard metric).",
       &PeerCell::received},
      {"istio_tcp_sent_bytes_total",
       "Response bytes sent, from the upstream (Istio standard metric).",
       &PeerCell::sent},
  };
  const std::vector<metrics::Labels> sets = table.Labels();
  // Each label set rendered once, shared by the four families.
  std::vector<std::string> rendered;
  rendered.reserve(sets.size());
  for (const metrics::Labels& labels : sets) {
    std::string text = "{";
    for (const auto& [name, value] : labels) {
      if (text.size() > 1) text += ',';
      absl::StrAppend(&text, name, "=\"");
      metrics::AppendEscaped(text, value, /*escape_quote=*/true);
      text += '"';
    }
    text += '}';
    rendered.push_back(std::move(text));
  }
  std::string out;
  for (const Family& family : kFamilies) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", family.help, "\n# TYPE ",
                    family.name, " counter\n");
    for (uint32_t id = 0; id < sets.size(); ++id) {
      uint64_t opened = 0, value = 0;
      for (const PeerCache* w : workers) {
        opened += w->cell(id).opened.load(std::memory_order_relaxed);
        value += (w->cell(id).*family.member).load(std::memory_order_relaxed);
      }
      // An overflow series appears once something folded into it.
      if (opened == 0) continue;
      absl::StrAppend(&out, family.name, rendered[id], " ", value, "\n");
    }
  }
  return out;
}

}  // namespace tandem::proxy
