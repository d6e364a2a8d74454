// tandem-proxy: the data-plane sidecar. Flags live here only; everything else takes
// ProxyOptions.
//
//   tandem-proxy --config=/etc/tandem/proxy.json [--log-level=info]
//   [--log-format=text|json]
//   tandem-proxy --wait-ready=127.0.0.1:15021 [--wait-timeout=120s]
//     returns 0 once the proxy there answers /healthz/ready with 200 (the postStart hook
//     that holds a classic-mode pod's app until its proxy is ready; docs/injection.md)
//
// Env TANDEM_INBOUND_MODE=STRICT|PERMISSIVE, when set and not empty, overrides the
// config's default_inbound_mode (the injector sets it per pod from an annotation).
//
// Signals: SIGHUP re-reads PEM certificate files; SIGTERM/SIGINT stop accepting, drain
// open connections for drain_timeout_ms, then exit.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/log/log.h"
#include "common/process.h"
#include "proxy/admin.h"
#include "proxy/config.h"
#include "proxy/policy_client.h"
#include "proxy/proxy.h"
#include "proxy/sds_client.h"
#include "proxy/tls_context_manager.h"
#include "proxy/wait_ready.h"

namespace {

using tandem::proxy::Proxy;
using tandem::proxy::ProxyOptions;
namespace log = tandem::log;

absl::Status LoadPemFiles(const ProxyOptions& o, Proxy& proxy) {
  tandem::WorkloadSecretPem secret;
  for (auto [path, out] : {std::pair{&o.private_key_file, &secret.private_key},
                           std::pair{&o.cert_chain_file, &secret.cert_chain},
                           std::pair{&o.trust_bundle_file, &secret.trust_bundle}}) {
    absl::StatusOr<std::string> text = tandem::ReadFileToString(*path);
    if (!text.ok()) return text.status();
    *out = *std::move(text);
  }
  return proxy.tls().UpdateSecret(secret);
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: tandem-proxy --config=FILE [--log-level=debug|info|warn|error]\n"
      "                    [--log-format=text|json] [--peer-label-sets=1000]\n"
      "                    [--agent-metrics-port=15019]\n"
      "       tandem-proxy --wait-ready=HOST:PORT [--wait-timeout=120s]\n"
      "  FILE: JSON, schema proto/tandem/proxy_config.proto\n"
      "  env TANDEM_INBOUND_MODE=STRICT|PERMISSIVE overrides default_inbound_mode\n"
      "  --peer-label-sets: istio_tcp_* label sets kept before peers fold into the\n"
      "    overflow series (0 to 100000)\n"
      "  env ISTIO_META_WORKLOAD_NAME, POD_NAMESPACE, TANDEM_APP, TANDEM_VERSION,\n"
      "    TANDEM_CANONICAL_SERVICE, TANDEM_CANONICAL_REVISION, ISTIO_META_CLUSTER_ID:\n"
      "    our own workload's istio_tcp_* labels (unset: unknown)\n"
      "  --agent-metrics-port, env TANDEM_APP_METRICS_PORT/_PATH: loopback /metrics "
      "pages\n"
      "    merged into the metrics port's /metrics (one scrape per pod)\n");
}

constexpr int kMaxPeerLabelSets = 100000;

// Reads a loopback port for a merged /metrics source; 0 (or unset) is none.
absl::Status ParsePort(absl::string_view what, const std::string& text, uint16_t* port) {
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a port number, 0 to 65535"));
  }
  *port = static_cast<uint16_t>(value);
  return absl::OkStatus();
}

// The other /metrics pages of the pod the metrics port merges (one scrape per pod):
// the agent's (--agent-metrics-port) and the app's, which the injector records from
// the app's prometheus.io/port and /path annotations (TANDEM_APP_METRICS_PORT, _PATH).
absl::StatusOr<std::vector<tandem::proxy::MetricsSource>> MergedSources(
    const tandem::Flags& flags) {
  std::vector<tandem::proxy::MetricsSource> sources;
  tandem::proxy::MetricsSource agent{"agent"};
  if (absl::Status s = ParsePort("--agent-metrics-port",
                                 flags.Get("agent-metrics-port", "0"), &agent.port);
      !s.ok()) {
    return s;
  }
  if (agent.port != 0) sources.push_back(agent);
  tandem::proxy::MetricsSource app{"app"};
  const char* port = std::getenv("TANDEM_APP_METRICS_PORT");
  if (port != nullptr && *port) {
    if (absl::Status s = ParsePort("TANDEM_APP_METRICS_PORT", port, &app.port); !s.ok()) {
      return s;
    }
    if (const char* path = std::getenv("TANDEM_APP_METRICS_PATH");
        path != nullptr && *path) {
      app.path = path;
    }
    // The path goes into a request line: printable ASCII, no space.
    bool printable = !app.path.empty() && app.path[0] == '/';
    for (char c : app.path) printable = printable && c > ' ' && c < 0x7f;
    if (!printable) {
      return absl::InvalidArgumentError(
          "TANDEM_APP_METRICS_PATH must start with / and hold printable ASCII, no space");
    }
    if (app.port != 0) sources.push_back(app);
  }
  return sources;
}

// Our own side of the istio_tcp_* labels, as the injector's template sets them.
tandem::proxy::WorkloadLabels WorkloadFromEnvironment() {
  tandem::proxy::WorkloadLabels workload;
  auto read = [](const char* name, std::string& out) {
    if (const char* value = std::getenv(name); value != nullptr && *value) out = value;
  };
  read("ISTIO_META_WORKLOAD_NAME", workload.name);
  read("POD_NAMESPACE", workload.namespace_);
  read("TANDEM_APP", workload.app);
  read("TANDEM_VERSION", workload.version);
  read("TANDEM_CANONICAL_SERVICE", workload.canonical_service);
  read("TANDEM_CANONICAL_REVISION", workload.canonical_revision);
  read("ISTIO_META_CLUSTER_ID", workload.cluster);
  return workload;
}

int Fail(int code, std::string_view what, const absl::Status& status) {
  log::Error("proxy", what, {{"error", std::string(status.message())}});
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::PrepareProcess();
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      Usage();
      return 0;
    }
  }
  absl::StatusOr<tandem::Flags> flags =
      tandem::Flags::Parse(argc, argv, 1,
                           {"config", "log-level", "log-format", "wait-ready",
                            "wait-timeout", "peer-label-sets", "agent-metrics-port"});
  if (!flags.ok()) {
    std::fprintf(stderr, "tandem-proxy: %s\n",
                 std::string(flags.status().message()).c_str());
    Usage();
    return 2;
  }
  if (absl::Status s =
          log::ConfigureDefault(flags->Get("log-level"), flags->Get("log-format"));
      !s.ok()) {
    std::fprintf(stderr, "tandem-proxy: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (flags->Has("wait-ready")) {
    tandem::proxy::WaitReadyOptions wait;
    wait.address = flags->Get("wait-ready");
    absl::StatusOr<absl::Duration> timeout =
        flags->GetDuration("wait-timeout", wait.timeout, absl::Seconds(1));
    if (!timeout.ok()) return Fail(2, "invalid --wait-timeout", timeout.status());
    wait.timeout = *timeout;
    absl::Status ready = tandem::proxy::WaitUntilReady(wait);
    if (!ready.ok()) {
      return Fail(ready.code() == absl::StatusCode::kInvalidArgument ? 2 : 1,
                  "--wait-ready", ready);
    }
    return 0;
  }
  const std::string config_path = flags->Get("config");
  std::string json = "{}";
  if (!config_path.empty()) {
    absl::StatusOr<std::string> text = tandem::ReadFileToString(config_path);
    if (!text.ok()) return Fail(2, "cannot read the configuration", text.status());
    json = *text;
  }
  absl::StatusOr<ProxyOptions> options = tandem::proxy::ParseProxyConfig(json);
  if (!options.ok()) return Fail(2, "invalid configuration", options.status());
  absl::StatusOr<std::vector<tandem::proxy::MetricsSource>> merged =
      MergedSources(*flags);
  if (!merged.ok()) return Fail(2, "invalid metrics merge", merged.status());
  options->workload = WorkloadFromEnvironment();
  if (flags->Has("peer-label-sets")) {
    int limit = 0;
    if (!absl::SimpleAtoi(flags->Get("peer-label-sets"), &limit) || limit < 0 ||
        limit > kMaxPeerLabelSets) {
      return Fail(
          2, "invalid --peer-label-sets",
          absl::InvalidArgumentError(absl::StrCat(
              "--peer-label-sets must be an integer from 0 to ", kMaxPeerLabelSets)));
    }
    options->peer_label_sets = static_cast<size_t>(limit);
  }
  if (const char* mode = std::getenv("TANDEM_INBOUND_MODE"); mode != nullptr && *mode) {
    if (std::string_view(mode) == "STRICT") {
      options->policy.default_inbound_mode = tandem::proxy::InboundMode::kStrict;
    } else if (std::string_view(mode) == "PERMISSIVE") {
      options->policy.default_inbound_mode = tandem::proxy::InboundMode::kPermissive;
    } else {
      return Fail(
          2, "invalid configuration",
          absl::InvalidArgumentError("TANDEM_INBOUND_MODE must be STRICT or PERMISSIVE"));
    }
  }

  // Signals are taken synchronously by the main thread; block them before any thread
  // starts so no worker ever runs a handler.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(*options);
  if (!proxy.ok()) return Fail(2, "invalid configuration", proxy.status());
  const bool pem_mode = !options->cert_chain_file.empty();
  if (pem_mode) {
    if (absl::Status s = LoadPemFiles(*options, **proxy); !s.ok()) {
      // Not fatal: the proxy starts not-ready and refuses mTLS until a good secret.
      log::Error("proxy", "certificate files refused",
                 {{"error", std::string(s.message())}});
    }
  }
  std::unique_ptr<tandem::proxy::SdsClient> sds;
  if (!options->sds_socket.empty()) {
    // Redials of a lost stream never wait past a quarter of what the certificate in
    // force has left: the agent may be back with the next one.
    tandem::proxy::SdsReconnectOptions reconnect;
    reconnect.certificate_not_after = [tls = &(*proxy)->tls()] {
      std::shared_ptr<tandem::proxy::TlsSnapshot> latest = tls->Latest();
      return latest ? latest->leaf.not_after() : absl::InfinitePast();
    };
    absl::StatusOr<std::unique_ptr<tandem::proxy::SdsClient>> client =
        tandem::proxy::SdsClient::Create(options->sds_socket, &(*proxy)->tls(),
                                         std::move(reconnect));
    if (!client.ok()) return Fail(2, "SDS client", client.status());
    sds = *std::move(client);
    sds->Start();
  }
  std::unique_ptr<tandem::proxy::PolicyClient> policy;
  if (options->policy_from_agent) {
    char host[256] = "tandem-proxy";
    gethostname(host, sizeof(host) - 1);  // the pod name, for the control plane's logs
    absl::StatusOr<std::unique_ptr<tandem::proxy::PolicyClient>> client =
        tandem::proxy::PolicyClient::Create(options->sds_socket, host, proxy->get());
    if (!client.ok()) return Fail(2, "policy client", client.status());
    policy = *std::move(client);
    policy->Start();
  }
  if (absl::Status s = (*proxy)->Start(); !s.ok()) return Fail(1, "cannot listen", s);

  Proxy* p = proxy->get();
  log::Listening("proxy", "outbound", p->options().outbound.text,
                 p->options().outbound.port());
  log::Listening("proxy", "inbound", p->options().inbound.text,
                 p->options().inbound.port());
  absl::StatusOr<std::unique_ptr<tandem::proxy::ProxyEndpoints>> endpoints =
      tandem::proxy::ProxyEndpoints::Create(
          p,
          [&sds, &policy]() {
            std::string extra;
            if (sds) extra += sds->RenderMetrics();
            if (policy) extra += policy->RenderMetrics();
            return extra;
          },
          *std::move(merged));
  if (!endpoints.ok()) return Fail(1, "cannot serve metrics/admin", endpoints.status());
  if (absl::Status s = (*endpoints)->Start(); !s.ok()) {
    return Fail(1, "cannot serve metrics/admin", s);
  }
  log::Info("proxy", "started", {{"workers", options->workers}});

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      if (pem_mode) {
        absl::Status s = LoadPemFiles(*options, *p);
        if (s.ok()) {
          log::Info("proxy", "SIGHUP: certificates reloaded");
        } else {
          log::Error("proxy", "SIGHUP: certificates refused, keeping the current ones",
                     {{"error", std::string(s.message())}});
        }
      }
      continue;
    }
    log::Info("proxy", "draining", {{"open_connections", p->open_connections()}});
    int cut = p->Drain();
    log::Info("proxy", "exiting", {{"cut_at_drain_deadline", cut}});
    break;
  }
  if (policy) policy->Stop();
  if (sds) sds->Stop();
  (*endpoints)->Stop();
  return 0;
}
