#include "proxy/proxy_stats.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::proxy {
namespace {

const char* kDirection[] = {"outbound", "inbound"};
const char* kMode[] = {"mtls", "plaintext"};

void Header(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void RenderHistogram(std::string& out, const char* name, const char* help,
                     const std::vector<const WorkerStats*>& workers,
                     WorkerHistogram const (WorkerStats::*member)[2]) {
  Header(out, name, "histogram", help);
  for (int d = 0; d < 2; ++d) {
    uint64_t cumulative = 0, count = 0;
    double sum = 0;
    std::array<uint64_t, WorkerHistogram::kBounds.size() + 1> buckets{};
    for (const WorkerStats* w : workers) {
      const WorkerHistogram& h = (w->*member)[d];
      for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += h.buckets[i].load();
      count += h.count.load();
      sum += h.sum.load();
    }
    for (size_t i = 0; i < WorkerHistogram::kBounds.size(); ++i) {
      cumulative += buckets[i];
      absl::StrAppend(&out, name, "_bucket{direction=\"", kDirection[d], "\",le=\"",
                      absl::StrFormat("%g", WorkerHistogram::kBounds[i]), "\"} ",
                      cumulative, "\n");
    }
    absl::StrAppend(&out, name, "_bucket{direction=\"", kDirection[d], "\",le=\"+Inf\"} ",
                    count, "\n", name, "_sum{direction=\"", kDirection[d], "\"} ",
                    absl::StrFormat("%.6f", sum), "\n", name, "_count{direction=\"",
                    kDirection[d], "\"} ", count, "\n");
  }
}

}  // namespace

const char* FailReasonName(FailReason reason) {
  static const char* kNames[] = {
      "malformed",      "unknown_ca",        "expired", "not_yet_valid",  "bad_identity",
      "not_allowed",    "plaintext_refused", "timeout", "not_authorized", "tls_error",
      "no_certificate", "wrong_server",      "revoked"};
  return kNames[static_cast<int>(reason)];
}

void WorkerHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  WorkerStats::Add(buckets[i], 1);
  WorkerStats::Add(count, 1);
  sum.store(sum.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
}

std::string RenderWorkerStats(const std::vector<const WorkerStats*>& workers) {
  std::string out;
  auto sum2 = [&](auto WorkerStats::*member, int a, int b) {
    uint64_t total = 0;
    for (const WorkerStats* w : workers) total += (w->*member)[a][b].load();
    return total;
  };
  Header(out, "tandem_proxy_connections_opened_total", "counter",
         "Connections accepted, by direction and mode.");
  for (int d = 0; d < 2; ++d)
    for (int m = 0; m < 2; ++m)
      absl::StrAppend(&out, "tandem_proxy_connections_opened_total{direction=\"",
                      kDirection[d], "\",mode=\"", kMode[m], "\"} ",
                      sum2(&WorkerStats::opened, d, m), "\n");
  Header(out, "tandem_proxy_connections_closed_total", "counter",
         "Connections closed, by direction and mode.");
  for (int d = 0; d < 2; ++d)
    for (int m = 0; m < 2; ++m)
      absl::StrAppend(&out, "tandem_proxy_connections_closed_total{direction=\"",
                      kDirection[d], "\",mode=\"", kMode[m], "\"} ",
                      sum2(&WorkerStats::closed, d, m), "\n");
  Header(out, "tandem_proxy_connections_active", "gauge",
         "Connections open now, by direction and mode.");
  for (int d = 0; d < 2; ++d)
    for (int m = 0; m < 2; ++m) {
      int64_t total = 0;
      for (const WorkerStats* w : workers) total += w->active[d][m].load();
      absl::StrAppend(&out, "tandem_proxy_connections_active{direction=\"", kDirection[d],
                      "\",mode=\"", kMode[m], "\"} ", total, "\n");
    }
  Header(out, "tandem_proxy_bytes_total", "counter",
         "Bytes relayed, by direction and the side they came from.");
  for (int d = 0; d < 2; ++d) {
    uint64_t down = 0, up = 0;
    for (const WorkerStats* w : workers) {
      down += w->bytes_from_downstream[d].load();
      up += w->bytes_from_upstream[d].load();
    }
    absl::StrAppend(&out, "tandem_proxy_bytes_total{direction=\"", kDirection[d],
                    "\",from=\"downstream\"} ", down, "\n",
                    "tandem_proxy_bytes_total{direction=\"", kDirection[d],
                    "\",from=\"upstream\"} ", up, "\n");
  }
  Header(out, "tandem_proxy_handshake_failures_total", "counter",
         "Connections refused before pumping, by direction and reason.");
  for (int d = 0; d < 2; ++d)
    for (int r = 0; r < static_cast<int>(FailReason::kCount); ++r)
      absl::StrAppend(&out, "tandem_proxy_handshake_failures_total{direction=\"",
                      kDirection[d], "\",reason=\"",
                      FailReasonName(static_cast<FailReason>(r)), "\"} ",
                      sum2(&WorkerStats::failures, d, r), "\n");
  Header(out, "tandem_proxy_upstream_connect_failures_total", "counter",
         "Upstream TCP connects that failed or timed out.");
  for (int d = 0; d < 2; ++d) {
    uint64_t total = 0;
    for (const WorkerStats* w : workers) total += w->connect_failures[d].load();
    absl::StrAppend(&out, "tandem_proxy_upstream_connect_failures_total{direction=\"",
                    kDirection[d], "\"} ", total, "\n");
  }
  uint64_t over = 0, resumed = 0, paused = 0, revoked = 0, folded = 0;
  for (const WorkerStats* w : workers) {
    folded += w->peer_overflow.load();
    over += w->over_limit.load();
    resumed += w->resumed_handshakes.load();
    paused += w->accept_paused.load();
    revoked += w->revoked_closed.load();
  }
  Header(out, "tandem_proxy_connections_over_limit_total", "counter",
         "Connections refused because the global connection limit was reached.");
  absl::StrAppend(&out, "tandem_proxy_connections_over_limit_total ", over, "\n");
  Header(out, "tandem_proxy_accept_failures_total", "counter",
         "accept() failures that paused a listener for a tick, by reason.");
  absl::StrAppend(&out,
                  "tandem_proxy_accept_failures_total{reason=\"out_of_descriptors\"} ",
                  paused, "\n");
  Header(out, "tandem_proxy_tls_resumed_total", "counter",
         "Outbound mTLS handshakes that resumed a session.");
  absl::StrAppend(&out, "tandem_proxy_tls_resumed_total ", resumed, "\n");
  Header(out, "tandem_proxy_connections_revoked_total", "counter",
         "Open connections closed because a policy update revoked their peer.");
  absl::StrAppend(&out, "tandem_proxy_connections_revoked_total ", revoked, "\n");
  Header(out, "tandem_proxy_peer_metrics_overflow_total", "counter",
         "Connections counted in the istio_tcp_* overflow series because the peer "
         "label set limit was reached.");
  absl::StrAppend(&out, "tandem_proxy_peer_metrics_overflow_total ", folded, "\n");
  RenderHistogram(out, "tandem_proxy_handshake_duration_seconds",
                  "TLS handshake time, from first byte to done.", workers,
                  &WorkerStats::handshake_seconds);
  RenderHistogram(out, "tandem_proxy_connection_duration_seconds", "Connection lifetime.",
                  workers, &WorkerStats::connection_seconds);
  return out;
}

}  // namespace tandem::proxy
