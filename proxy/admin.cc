#include "proxy/admin.h"

#include <signal.h>
#include <unistd.h>

#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/log/log.h"
#include "proxy/mesh_policy.h"

namespace tandem::proxy {
namespace {

using http::HttpRequest;
using http::HttpResponse;

constexpr char kJson[] = "application/json";
constexpr char kPrometheus[] = "text/plain; version=0.0.4; charset=utf-8";

std::string Quote(std::string_view s) { return log::JsonQuote(s); }

std::string Time(absl::Time t) {
  return Quote(absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone()));
}

std::string CertificatesJson(Proxy& proxy) {
  std::shared_ptr<TlsSnapshot> s = proxy.tls().Latest();
  if (!s) {
    return absl::StrCat("{\"certificate\": null, \"last_refusal\": ",
                        Quote(proxy.tls().last_refusal()), "}\n");
  }
  return absl::StrCat(
      "{\"certificate\": {\"subject\": ", Quote(s->leaf.Subject()),
      ", \"spiffe_id\": ", Quote(s->identity.ToString()),
      ", \"serial\": ", Quote(s->leaf.SerialHex()),
      ", \"issuer\": ", Quote(s->leaf.Issuer()),
      ", \"not_before\": ", absl::ToUnixSeconds(s->leaf.not_before()),
      ", \"not_after\": ", absl::ToUnixSeconds(s->leaf.not_after()),
      ", \"not_after_utc\": ", Time(s->leaf.not_after()), ", \"expires_in_seconds\": ",
      absl::ToInt64Seconds(s->leaf.not_after() - absl::Now()),
      ", \"chain_pem\": ", Quote(s->chain_pem),
      "}, \"roots\": ", s->bundle.roots().size(), ", \"generation\": ", s->generation,
      ", \"updates_accepted\": ", proxy.tls().updates_accepted(),
      ", \"updates_refused\": ", proxy.tls().updates_refused(),
      ", \"last_refusal\": ", Quote(proxy.tls().last_refusal()), "}\n");
}

std::string ConnectionsJson(const Proxy& proxy) {
  int64_t active[2][2] = {};
  for (const WorkerStats* w : proxy.worker_stats()) {
    for (int d = 0; d < 2; ++d) {
      for (int m = 0; m < 2; ++m) active[d][m] += w->active[d][m].load();
    }
  }
  auto direction = [&](int d) {
    return absl::StrCat("{\"mtls\": ", active[d][0], ", \"plaintext\": ", active[d][1],
                        "}");
  };
  return absl::StrCat("{\"open\": ", proxy.open_connections(),
                      ", \"outbound\": ", direction(0), ", \"inbound\": ", direction(1),
                      ", \"max\": ", proxy.options().max_connections, "}\n");
}

std::string LoggingJson() {
  return absl::StrCat(
      "{\"level\": \"", log::LevelName(log::Default().level()), "\", \"format\": \"",
      log::Default().format() == log::Format::kJson ? "json" : "text", "\"}\n");
}

// GET shows the level; POST ?level=NAME sets it (debug, info, warn, error).
HttpResponse Logging(const HttpRequest& request) {
  if (request.method == "POST") {
    if (!absl::StartsWith(request.query, "level=")) {
      return HttpResponse{400, "text/plain", "expected ?level=debug|info|warn|error\n"};
    }
    absl::StatusOr<log::Level> level = log::ParseLevel(request.query.substr(6));
    if (!level.ok()) {
      return HttpResponse{400, "text/plain",
                          std::string(level.status().message()) + "\n"};
    }
    log::Default().SetLevel(*level);
    log::Info("proxy", "log level changed", {{"level", log::LevelName(*level)}});
  }
  return HttpResponse{200, kJson, LoggingJson()};
}

HttpResponse SignalSelf(const HttpRequest& request, int sig) {
  if (request.method != "POST") return HttpResponse{405, "text/plain", "use POST\n"};
  kill(getpid(), sig);
  return HttpResponse{200, "text/plain", "ok\n"};
}

absl::StatusOr<std::unique_ptr<http::HttpServer>> NewServer(const SocketAddress& address,
                                                            const char* name,
                                                            metrics::Registry* registry) {
  http::HttpServer::Options options;
  options.registry = registry;
  if (absl::Status s = http::SetListenAddress(address.text, &options); !s.ok()) {
    return s;
  }
  options.name = name;
  return http::HttpServer::Create(std::move(options));
}

}  // namespace

std::string EffectiveConfigJson(const ProxyOptions& o) {
  // The config file's mesh rules are the starting policy: rendered by the one code
  // that renders every policy (also /policy).
  std::string policy = MeshPolicy::FromOptions(o)->ToJson();
  while (!policy.empty() && policy.back() == '\n') policy.pop_back();
  auto ms = [](absl::Duration d) { return absl::ToInt64Milliseconds(d); };
  return absl::StrCat(
      "{\"trust_domain\": ", Quote(o.trust_domain),
      ", \"outbound_address\": ", Quote(o.outbound.text),
      ", \"inbound_address\": ", Quote(o.inbound.text),
      ", \"admin_address\": ", Quote(o.admin.text),
      ", \"metrics_address\": ", Quote(o.metrics.text),
      ", \"health_address\": ", Quote(o.health.text), ", \"workers\": ", o.workers,
      ", \"app_host\": ", o.app_host.length ? Quote(o.app_host.text) : "null",
      ", \"outbound_fixed_destination\": ",
      o.has_fixed_destination ? Quote(o.fixed_destination.text) : "null",
      ", \"inbound_fixed_app\": ", o.has_fixed_app ? Quote(o.fixed_app.text) : "null",
      ", \"policy\": ", policy,
      ", \"policy_from_agent\": ", o.policy_from_agent ? "true" : "false",
      ", \"socket_mark\": ", o.socket_mark, ", \"max_connections\": ", o.max_connections,
      ", \"buffer_bytes\": ", o.buffer_bytes,
      ", \"connect_timeout_ms\": ", ms(o.connect_timeout),
      ", \"handshake_timeout_ms\": ", ms(o.handshake_timeout),
      ", \"idle_timeout_ms\": ", ms(o.idle_timeout),
      ", \"drain_timeout_ms\": ", ms(o.drain_timeout),
      ", \"allow_tls12\": ", o.allow_tls12 ? "true" : "false",
      ", \"access_log\": ", o.access_log ? "true" : "false",
      ", \"cert_chain_file\": ", Quote(o.cert_chain_file),
      ", \"private_key_file\": ", Quote(o.private_key_file),
      ", \"trust_bundle_file\": ", Quote(o.trust_bundle_file),
      ", \"sds_socket\": ", Quote(o.sds_socket), "}\n");
}

absl::StatusOr<std::unique_ptr<ProxyEndpoints>> ProxyEndpoints::Create(
    Proxy* proxy, std::function<std::string()> extra_metrics,
    std::vector<MetricsSource> merge) {
  std::unique_ptr<ProxyEndpoints> e(new ProxyEndpoints());
  e->proxy_ = proxy;
  const ProxyOptions& o = proxy->options();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> metrics =
      NewServer(o.metrics, "metrics", &e->http_registry_);
  if (!metrics.ok()) return metrics.status();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> admin =
      NewServer(o.admin, "admin", &e->http_registry_);
  if (!admin.ok()) return admin.status();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> health =
      NewServer(o.health, "health", &e->http_registry_);
  if (!health.ok()) return health.status();
  e->metrics_ = *std::move(metrics);
  e->admin_ = *std::move(admin);
  e->health_ = *std::move(health);

  auto metrics_handler = [proxy, extra_metrics, e = e.get()](const HttpRequest&) {
    std::string body = proxy->RenderMetrics();
    if (extra_metrics) body += extra_metrics();
    body += e->http_registry_.RenderPrometheus();
    return HttpResponse{200, kPrometheus, std::move(body)};
  };
  auto ready_handler = [proxy](const HttpRequest&) {
    if (proxy->ready()) return HttpResponse{200, "text/plain", "ready\n"};
    return HttpResponse{503, "text/plain",
                        proxy->listening()
                            ? "no valid certificate (none yet, or expired)\n"
                            : "not listening\n"};
  };
  auto live_handler = [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "live\n"};
  };
  for (http::HttpServer* server :
       {e->metrics_.get(), e->admin_.get(), e->health_.get()}) {
    server->Handle("/healthz/ready", ready_handler);
    server->Handle("/healthz/live", live_handler);
  }
  e->metrics_->Handle("/metrics", metrics_handler);
  // One scrape per pod (Istio's merged metrics): the pod's prometheus.io/* annotations
  // point here; /metrics stays the proxy's own for scrapers that list each process.
  if (merge.empty()) {
    e->metrics_->Handle(std::string(kMergedMetricsPath), metrics_handler);
  } else {
    MetricsMerger::Options merger;
    merger.sources = std::move(merge);
    merger.registry = &e->http_registry_;
    e->merger_ = std::make_unique<MetricsMerger>(std::move(merger));
    e->metrics_->HandleDeferred(
        std::string(kMergedMetricsPath),
        [metrics_handler, e = e.get()](const HttpRequest& request,
                                       http::HttpServer::Responder respond) {
          e->merger_->Serve(metrics_handler(request).body, std::move(respond));
        });
  }
  e->admin_->Handle("/metrics", metrics_handler);
  e->admin_->Handle("/certs", [proxy](const HttpRequest&) {
    return HttpResponse{200, kJson, CertificatesJson(*proxy)};
  });
  e->admin_->Handle("/config", [config = EffectiveConfigJson(o)](const HttpRequest&) {
    return HttpResponse{200, kJson, config};
  });
  e->admin_->Handle("/connections", [proxy](const HttpRequest&) {
    return HttpResponse{200, kJson, ConnectionsJson(*proxy)};
  });
  e->admin_->Handle("/policy", [proxy](const HttpRequest&) {
    return HttpResponse{200, kJson, proxy->policy()->ToJson()};
  });
  e->admin_->Handle("/logging", Logging);
  e->admin_->Handle("/drain",
                    [](const HttpRequest& r) { return SignalSelf(r, SIGTERM); });
  e->admin_->Handle("/quitquitquit",
                    [](const HttpRequest& r) { return SignalSelf(r, SIGTERM); });
  return e;
}

ProxyEndpoints::~ProxyEndpoints() { Stop(); }

void ProxyEndpoints::HandleAdmin(const std::string& path,
                                 http::HttpServer::Handler handler) {
  admin_->Handle(path, std::move(handler));
}

absl::Status ProxyEndpoints::Start() {
  const ProxyOptions& o = proxy_->options();
  for (auto [server, address, name] : {std::tuple{metrics_.get(), &o.metrics, "metrics"},
                                       std::tuple{admin_.get(), &o.admin, "admin"},
                                       std::tuple{health_.get(), &o.health, "health"}}) {
    if (absl::Status s = server->Start(); !s.ok()) return s;
    log::Listening("proxy", name, address->text, server->port());
  }
  return absl::OkStatus();
}

void ProxyEndpoints::Stop() {
  for (http::HttpServer* server : {metrics_.get(), admin_.get(), health_.get()}) {
    if (server) server->Stop();
  }
}

}  // namespace tandem::proxy
