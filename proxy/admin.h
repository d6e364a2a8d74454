#ifndef TANDEM_PROXY_ADMIN_H_
#define TANDEM_PROXY_ADMIN_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_server.h"
#include "common/metrics/registry.h"
#include "proxy/metrics_merger.h"
#include "proxy/proxy.h"

namespace tandem::proxy {

// The proxy's three HTTP listeners (common/http):
//   metrics (default 0.0.0.0:15090): /metrics, /stats/prometheus (merged), /healthz/*
//   health  (default 0.0.0.0:15021): /healthz/ready, /healthz/live
//   admin   (127.0.0.1:15000, loopback enforced by the config): all of the above and
//     GET  /certs        certificate in force: subject, SPIFFE ID, serial, validity,
//     chain GET  /config       effective configuration (defaults filled in) GET
//     /connections  open connections by direction and mode GET  /logging      log level
//     and format; POST /logging?level=debug changes the level POST /drain, /quitquitquit
//     stop accepting, drain, exit (SIGTERM to ourselves)
// Readiness is "listeners up and a certificate in force"; liveness is "the process
// answers". Create/Start/Stop from the main thread; handlers run on each server's thread.
// The metrics port's merged page (Istio's path for its merged metrics).
inline constexpr absl::string_view kMergedMetricsPath = "/stats/prometheus";

class ProxyEndpoints {
 public:
  // `extra_metrics` (may be empty) is appended to /metrics, e.g. the SDS client's.
  // The metrics port also serves kMergedMetricsPath: /metrics merged with each of
  // `merge` (the agent's and the app's pages: one scrape per pod; MetricsMerger).
  // `proxy` must outlive this.
  static absl::StatusOr<std::unique_ptr<ProxyEndpoints>> Create(
      Proxy* proxy, std::function<std::string()> extra_metrics,
      std::vector<MetricsSource> merge = {});
  ~ProxyEndpoints();

  // Adds an admin-only GET endpoint (before Start()).
  void HandleAdmin(const std::string& path, http::HttpServer::Handler handler);
  // Serves, and logs each listener's bound address (log::Listening).
  absl::Status Start();
  void Stop();

  uint16_t metrics_port() const { return metrics_->port(); }
  uint16_t admin_port() const { return admin_->port(); }
  uint16_t health_port() const { return health_->port(); }

 private:
  ProxyEndpoints() = default;

  Proxy* proxy_ = nullptr;
  // The three servers' request and refusal counts (tandem_http_*), in /metrics.
  metrics::Registry http_registry_;
  // Null without sources to merge; its failure counts live in http_registry_.
  std::unique_ptr<MetricsMerger> merger_;
  std::unique_ptr<http::HttpServer> metrics_;
  std::unique_ptr<http::HttpServer> admin_;
  std::unique_ptr<http::HttpServer> health_;
};

// The effective configuration as JSON (every field, defaults filled in).
std::string EffectiveConfigJson(const ProxyOptions& options);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_ADMIN_H_
