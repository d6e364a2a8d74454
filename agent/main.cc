// tandem-agent: keeps the workload's certificate fresh and serves it to the proxy over
// SDS. Flags live here only (kUsage lists them).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/app_probe_spec.h"
#include "agent/app_prober.h"
#include "agent/ca_client.h"
#include "agent/policy_relay.h"
#include "agent/sds_server.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/http/http_server.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/process.h"

namespace {

constexpr char kUsage[] =
    "usage: tandem-agent --ca-address=HOST:15012 --ca-root=FILE\n"
    "                    --token-file=FILE --namespace=NS --service-account=SA\n"
    "                    [--ca-server-name=tandem-ca] [--trust-domain=cluster.local]\n"
    "                    [--sds-socket=/var/run/tandem/sds.sock] [--proxy-uid=1337]\n"
    "                    [--validity=24h] [--renew-fraction=0.5] [--extra-roots=FILE]\n"
    "                    [--metrics=127.0.0.1:15019] [--app-health=HOST:PORT]\n"
    "                    [--policy-relay=true|false]\n"
    "                    [--log-level=debug|info|warn|error] [--log-format=text|json]\n"
    "  --policy-relay (default true) also relays the workload's mesh policy from the\n"
    "  CA (MeshPolicyService) to the proxy on the SDS socket. --metrics= serves none.\n"
    "  --app-health (default off; injected pods: 0.0.0.0:15020) answers the kubelet's\n"
    "  probes of the app, /app-health/<container>/<livez|readyz|startupz>, by running\n"
    "  the original probes in the environment variable TANDEM_APP_PROBES (JSON).\n";

int Fail(const std::string& message) {
  tandem::log::Error("agent", message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::PrepareProcess();
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  absl::StatusOr<tandem::Flags> parsed = tandem::Flags::Parse(
      argc, argv, 1,
      {"ca-address", "ca-root", "ca-server-name", "token-file", "namespace",
       "service-account", "trust-domain", "sds-socket", "proxy-uid", "validity",
       "renew-fraction", "extra-roots", "metrics", "app-health", "policy-relay",
       "log-level", "log-format"});
  if (!parsed.ok()) {
    return Fail(std::string(parsed.status().message()) + " (see --help)");
  }
  const tandem::Flags& flags = *parsed;
  auto get = [&](const char* name, const std::string& fallback) {
    return flags.Get(name, fallback);
  };

  if (absl::Status s =
          tandem::log::ConfigureDefault(get("log-level", ""), get("log-format", ""));
      !s.ok()) {
    return Fail(std::string(s.message()));
  }

  // Values are checked before any file is read, so a bad flag is refused as such.
  absl::StatusOr<absl::Duration> validity =
      flags.GetDuration("validity", absl::Hours(24));
  if (!validity.ok()) return Fail(std::string(validity.status().message()));
  tandem::agent::AgentOptions options;
  options.requested_validity_seconds = absl::ToInt64Seconds(*validity);
  if (flags.Has("renew-fraction") &&
      (!absl::SimpleAtod(get("renew-fraction", ""), &options.policy.renew_fraction) ||
       options.policy.renew_fraction <= 0 || options.policy.renew_fraction >= 1)) {
    return Fail("--renew-fraction: must be between 0 and 1");
  }
  uint32_t proxy_uid = 1337;
  if (!absl::SimpleAtoi(get("proxy-uid", "1337"), &proxy_uid)) {
    return Fail("--proxy-uid: not a uid");
  }
  std::string policy_relay_flag = get("policy-relay", "true");
  if (policy_relay_flag != "true" && policy_relay_flag != "false") {
    return Fail("--policy-relay: true or false");
  }
  // The app's probes come from the pod spec (through the injector): a pod whose probes
  // cannot be served must not start, or the kubelet would only see them fail.
  tandem::agent::AppProbeTable app_probes;
  if (const char* env = getenv("TANDEM_APP_PROBES"); env != nullptr && *env != '\0') {
    absl::StatusOr<tandem::agent::AppProbeTable> parsed_probes =
        tandem::agent::ParseAppProbes(env);
    if (!parsed_probes.ok()) {
      return Fail("TANDEM_APP_PROBES: " + std::string(parsed_probes.status().message()));
    }
    app_probes = *std::move(parsed_probes);
  }
  tandem::http::HttpServer::Options app_health_options;
  app_health_options.name =
      "app_health";  // tandem_http_requests_total{server="app_health"}
  app_health_options.registry = &tandem::metrics::Registry::Default();
  std::string app_health_address = get("app-health", "");
  if (app_health_address.empty() && !app_probes.empty()) {
    return Fail(
        absl::StrCat("TANDEM_APP_PROBES names ", app_probes.size(),
                     " probes but --app-health is off: nothing would answer them"));
  }
  if (!app_health_address.empty()) {
    if (absl::Status s =
            tandem::http::SetListenAddress(app_health_address, &app_health_options);
        !s.ok()) {
      return Fail("--app-health: " + std::string(s.message()));
    }
  }

  tandem::agent::CaClientOptions ca_options;
  ca_options.address = get("ca-address", ca_options.address);
  ca_options.server_name = get("ca-server-name", ca_options.server_name);
  const std::string root_file = get("ca-root", "/var/run/tandem/ca-root.pem");
  absl::StatusOr<std::string> root = tandem::ReadFileToString(root_file);
  if (!root.ok()) return Fail("--ca-root: " + std::string(root.status().message()));
  ca_options.root_pem = *root;
  // Both re-read: a root rotation changes them while the agent runs.
  ca_options.root_file = root_file;
  ca_options.extra_roots_file = get("extra-roots", "");

  options.trust_domain = get("trust-domain", options.trust_domain);
  options.ns = get("namespace", options.ns);
  options.service_account = get("service-account", options.service_account);
  options.token_file = get("token-file", options.token_file);
  options.extra_roots_file = get("extra-roots", "");
  options.pinned_roots_pem = *root;  // the workload chain must come from this CA
  options.pinned_roots_file = root_file;

  tandem::agent::SdsServerOptions sds_options;
  sds_options.socket_path = get("sds-socket", sds_options.socket_path);
  sds_options.allowed_uids = {proxy_uid};

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<tandem::agent::CaClient>> ca =
      tandem::agent::CaClient::Create(ca_options);
  if (!ca.ok()) return Fail(std::string(ca.status().message()));
  // The renewal loop, once it exists: the relay tells it when the CA answers.
  std::atomic<tandem::agent::Agent*> renewals{nullptr};
  std::unique_ptr<tandem::agent::PolicyRelay> relay;
  if (policy_relay_flag == "true") {
    tandem::agent::PolicyRelayOptions relay_options;
    relay_options.ca = ca_options;
    // One connection to the CA for both: a CA restart costs one TLS handshake per
    // agent, and a renewal goes out on the connection the relay's stream re-opened.
    relay_options.channel = (*ca)->channel();
    // A renewal that found the CA unreachable retries soon after the stream is back
    // rather than at the end of its backoff (up to 30 s).
    relay_options.on_ca_reached = [&renewals] {
      if (tandem::agent::Agent* agent = renewals.load()) agent->CaReachable();
    };
    relay_options.token_file = options.token_file;
    char host[256] = "tandem-agent";
    gethostname(host, sizeof(host) - 1);  // the pod name, for the control plane's logs
    relay_options.node = host;
    absl::StatusOr<std::unique_ptr<tandem::agent::PolicyRelay>> created =
        tandem::agent::PolicyRelay::Create(relay_options);
    if (!created.ok()) return Fail(std::string(created.status().message()));
    relay = *std::move(created);
    sds_options.extra_services.push_back(relay->service());
    relay->Start();
  }
  absl::StatusOr<std::unique_ptr<tandem::agent::SdsServer>> sds =
      tandem::agent::SdsServer::Create(sds_options);
  if (!sds.ok()) return Fail(std::string(sds.status().message()));
  if (absl::Status s = (*sds)->Start(); !s.ok()) return Fail(std::string(s.message()));
  if (relay) {
    // The CA shows each proxy's certificate (`tandemctl proxy-status`).
    options.on_certificate = [r = relay.get()](const std::string& serial,
                                               absl::Time not_after) {
      r->SetCertificate(serial, not_after);
    };
  }
  tandem::agent::Agent agent(options, ca->get(), sds->get());
  renewals.store(&agent);
  // The relay calls the agent: on every return below it stops before the agent goes.
  absl::Cleanup stop_relay = [&relay] {
    if (relay) relay->Stop();
  };
  agent.Start();

  using tandem::http::HttpRequest;
  using tandem::http::HttpResponse;
  std::unique_ptr<tandem::http::HttpServer> http;
  if (std::string address = get("metrics", "127.0.0.1:15019"); !address.empty()) {
    tandem::http::HttpServer::Options http_options;
    http_options.name = "agent";
    http_options.registry = &tandem::metrics::Registry::Default();
    if (absl::Status s = tandem::http::SetListenAddress(address, &http_options);
        !s.ok()) {
      return Fail("--metrics: " + std::string(s.message()));
    }
    absl::StatusOr<std::unique_ptr<tandem::http::HttpServer>> server =
        tandem::http::HttpServer::Create(http_options);
    if (!server.ok()) return Fail(std::string(server.status().message()));
    http = *std::move(server);
    http->Handle("/metrics", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                          tandem::metrics::Registry::Default().RenderPrometheus()};
    });
    // Ready while a certificate is in force, including while its renewal is failing.
    http->Handle("/healthz/ready", [&agent](const HttpRequest&) {
      tandem::agent::CertState state = agent.state();
      return agent.ready()
                 ? HttpResponse{200, "text/plain", "ready\n"}
                 : HttpResponse{
                       503, "text/plain",
                       absl::StrCat("not ready: ",
                                    std::string(tandem::agent::CertStateName(state)),
                                    "\n")};
    });
    http->Handle("/healthz/live", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "live\n"};
    });
    if (absl::Status s = http->Start(); !s.ok()) return Fail(std::string(s.message()));
    tandem::log::Listening("agent", "metrics", address, http->port());
  }

  // A server of its own, apart from --metrics: a scrape storm cannot delay a probe, and
  // its handlers answer from the prober's workers, so a slow app holds no other path.
  std::unique_ptr<tandem::agent::AppProber> prober;
  std::unique_ptr<tandem::http::HttpServer> app_health;
  if (!app_health_address.empty()) {
    prober = std::make_unique<tandem::agent::AppProber>(std::move(app_probes));
    app_health_options.deferred_timeout = prober->max_timeout() + absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<tandem::http::HttpServer>> server =
        tandem::http::HttpServer::Create(app_health_options);
    if (!server.ok()) {
      return Fail("--app-health: " + std::string(server.status().message()));
    }
    app_health = *std::move(server);
    prober->Serve(*app_health);
    prober->Start();
    if (absl::Status s = app_health->Start(); !s.ok()) {
      return Fail(std::string(s.message()));
    }
    tandem::log::Listening("agent", "app_health", app_health_address, app_health->port());
    tandem::log::Info("agent", "serving app probes",
                      {{"probes", static_cast<int>(prober->size())}});
  }
  tandem::log::Info(
      "agent", "serving SDS",
      {{"socket", sds_options.socket_path},
       {"spiffe_id", absl::StrCat("spiffe://", options.trust_domain, "/ns/", options.ns,
                                  "/sa/", options.service_account)}});
  int sig;
  sigwait(&signals, &sig);
  (*ca)->Shutdown();  // a call waiting for the CA would hold up the agent's stop
  agent.Stop();
  if (http) http->Stop();
  if (app_health) app_health->Stop();  // before the prober its handlers call
  if (prober) prober->Stop();
  (*sds)->Stop();
  if (relay) relay->Stop();
  return 0;
}
