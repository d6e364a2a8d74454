// tandem-agent: keeps the workload's certificate fresh and serves it to the proxy over
// SDS. Flags live here only.
//
//   tandem-agent --ca-address=HOST:15012 --ca-root=FILE [--ca-server-name=tandem-ca]
//                --token-file=FILE --namespace=NS --service-account=SA
//                [--trust-domain=cluster.local] [--sds-socket=/var/run/tandem/sds.sock]
//                [--proxy-uid=1337] [--validity=24h] [--renew-fraction=0.5]
//                [--extra-roots=FILE] [--metrics=127.0.0.1:15020]
//                [--log-level=info] [--log-format=text|json]
//                [--policy-relay=true]
//
// With --policy-relay (default true) the agent also relays the workload's mesh policy
// from the CA (MeshPolicyService) to the proxy on the SDS socket.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/ca_client.h"
#include "agent/policy_relay.h"
#include "agent/sds_server.h"
#include "common/file_util.h"
#include "common/http/http_server.h"
#include "common/log/log.h"
#include "common/process.h"
#include "common/metrics/registry.h"

namespace {

int Fail(const std::string& message) {
  tandem::log::Error("agent", message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::PrepareProcess();
  std::map<std::string, std::string> flags;
  static const char* kKnown[] = {
      "ca-address",      "ca-root",      "ca-server-name", "token-file",  "namespace",
      "service-account", "trust-domain", "sds-socket",     "proxy-uid",   "validity",
      "renew-fraction",  "extra-roots",  "metrics",        "policy-relay", "log-level",
      "log-format"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == std::string::npos) {
      return Fail("flags look like --name=value: " + arg);
    }
    std::string name = arg.substr(2, eq - 2);
    bool known = false;
    for (const char* k : kKnown) known |= name == k;
    if (!known) return Fail("unknown flag --" + name);
    flags[name] = arg.substr(eq + 1);
  }
  auto get = [&](const char* name, const std::string& fallback) {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  };

  if (absl::Status s =
          tandem::log::ConfigureDefault(get("log-level", ""), get("log-format", ""));
      !s.ok()) {
    return Fail(std::string(s.message()));
  }

  tandem::agent::CaClientOptions ca_options;
  ca_options.address = get("ca-address", ca_options.address);
  ca_options.server_name = get("ca-server-name", ca_options.server_name);
  absl::StatusOr<std::string> root =
      tandem::ReadFileToString(get("ca-root", "/var/run/tandem/ca-root.pem"));
  if (!root.ok()) return Fail("--ca-root: " + std::string(root.status().message()));
  ca_options.root_pem = *root;

  tandem::agent::AgentOptions options;
  options.trust_domain = get("trust-domain", options.trust_domain);
  options.ns = get("namespace", options.ns);
  options.service_account = get("service-account", options.service_account);
  options.token_file = get("token-file", options.token_file);
  options.extra_roots_file = get("extra-roots", "");
  options.pinned_roots_pem = *root;  // the workload chain must come from this CA
  absl::Duration validity = absl::Hours(24);
  if (flags.count("validity") && (!absl::ParseDuration(flags["validity"], &validity) ||
                                  validity < absl::Seconds(1))) {
    return Fail("--validity: not a duration of at least 1s");
  }
  options.requested_validity_seconds = absl::ToInt64Seconds(validity);
  if (flags.count("renew-fraction") &&
      (!absl::SimpleAtod(flags["renew-fraction"], &options.policy.renew_fraction) ||
       options.policy.renew_fraction <= 0 || options.policy.renew_fraction >= 1)) {
    return Fail("--renew-fraction: must be between 0 and 1");
  }

  tandem::agent::SdsServerOptions sds_options;
  sds_options.socket_path = get("sds-socket", sds_options.socket_path);
  uint32_t proxy_uid = 1337;
  if (!absl::SimpleAtoi(get("proxy-uid", "1337"), &proxy_uid)) return Fail("--proxy-uid");
  sds_options.allowed_uids = {proxy_uid};
  std::string policy_relay_flag = get("policy-relay", "true");
  if (policy_relay_flag != "true" && policy_relay_flag != "false") {
    return Fail("--policy-relay: true or false");
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<tandem::agent::CaClient>> ca =
      tandem::agent::CaClient::Create(ca_options);
  if (!ca.ok()) return Fail(std::string(ca.status().message()));
  std::unique_ptr<tandem::agent::PolicyRelay> relay;
  if (policy_relay_flag == "true") {
    tandem::agent::PolicyRelayOptions relay_options;
    relay_options.ca = ca_options;
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
  tandem::agent::Agent agent(options, ca->get(), sds->get());
  agent.Start();

  using tandem::http::HttpRequest;
  using tandem::http::HttpResponse;
  std::unique_ptr<tandem::http::HttpServer> http;
  if (std::string address = get("metrics", "127.0.0.1:15020"); !address.empty()) {
    tandem::http::HttpServer::Options http_options;
    http_options.name = "agent";
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
  }
  tandem::log::Info(
      "agent", "serving SDS",
      {{"socket", sds_options.socket_path},
       {"spiffe_id", absl::StrCat("spiffe://", options.trust_domain, "/ns/", options.ns,
                                  "/sa/", options.service_account)}});
  int sig;
  sigwait(&signals, &sig);
  agent.Stop();
  if (http) http->Stop();
  (*sds)->Stop();
  if (relay) relay->Stop();
  return 0;
}
