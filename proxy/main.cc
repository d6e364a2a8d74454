// tandem-proxy: the data-plane sidecar. Flags live here only; everything else takes
// ProxyOptions.
//
//   tandem-proxy --config=/etc/tandem/proxy.json
//
// Signals: SIGHUP re-reads PEM certificate files; SIGTERM/SIGINT stop accepting, drain
// open connections for drain_timeout_ms, then exit.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "proxy/config.h"
#include "proxy/policy_client.h"
#include "proxy/proxy.h"
#include "proxy/sds_client.h"

namespace {

using tandem::HttpRequest;
using tandem::HttpResponse;
using tandem::proxy::Proxy;
using tandem::proxy::ProxyOptions;

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
  std::fprintf(stderr,
               "usage: tandem-proxy --config=FILE\n"
               "  FILE: JSON, schema proto/tandem/proxy_config.proto\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--help" || arg == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "tandem-proxy: unknown flag %s\n", arg.c_str());
      Usage();
      return 2;
    }
  }
  std::string json = "{}";
  if (!config_path.empty()) {
    absl::StatusOr<std::string> text = tandem::ReadFileToString(config_path);
    if (!text.ok()) {
      std::fprintf(stderr, "tandem-proxy: %s\n",
                   std::string(text.status().message()).c_str());
      return 2;
    }
    json = *text;
  }
  absl::StatusOr<ProxyOptions> options = tandem::proxy::ParseProxyConfig(json);
  if (!options.ok()) {
    std::fprintf(stderr, "tandem-proxy: invalid configuration: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }

  // Signals are taken synchronously by the main thread; block them before any thread
  // starts so no worker ever runs a handler.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(*options);
  if (!proxy.ok()) {
    std::fprintf(stderr, "tandem-proxy: %s\n",
                 std::string(proxy.status().message()).c_str());
    return 2;
  }
  const bool pem_mode = !options->cert_chain_file.empty();
  if (pem_mode) {
    if (absl::Status s = LoadPemFiles(*options, **proxy); !s.ok()) {
      // Not fatal: the proxy starts not-ready and refuses mTLS until a good secret.
      std::fprintf(stderr, "tandem-proxy: certificate files refused: %s\n",
                   std::string(s.message()).c_str());
    }
  }
  std::unique_ptr<tandem::proxy::SdsClient> sds;
  if (!options->sds_socket.empty()) {
    absl::StatusOr<std::unique_ptr<tandem::proxy::SdsClient>> client =
        tandem::proxy::SdsClient::Create(options->sds_socket, &(*proxy)->tls());
    if (!client.ok()) {
      std::fprintf(stderr, "tandem-proxy: %s\n",
                   std::string(client.status().message()).c_str());
      return 2;
    }
    sds = *std::move(client);
    sds->Start();
  }
  std::unique_ptr<tandem::proxy::PolicyClient> policy;
  if (options->policy_from_agent) {
    char host[256] = "tandem-proxy";
    gethostname(host, sizeof(host) - 1);  // the pod name, for the control plane's logs
    absl::StatusOr<std::unique_ptr<tandem::proxy::PolicyClient>> client =
        tandem::proxy::PolicyClient::Create(options->sds_socket, host, proxy->get());
    if (!client.ok()) {
      std::fprintf(stderr, "tandem-proxy: %s\n",
                   std::string(client.status().message()).c_str());
      return 2;
    }
    policy = *std::move(client);
    policy->Start();
  }
  if (absl::Status s = (*proxy)->Start(); !s.ok()) {
    std::fprintf(stderr, "tandem-proxy: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  Proxy* p = proxy->get();
  absl::StatusOr<std::unique_ptr<tandem::HttpServer>> metrics =
      tandem::HttpServer::Create(options->metrics.text);
  absl::StatusOr<std::unique_ptr<tandem::HttpServer>> admin =
      tandem::HttpServer::Create(options->admin.text);
  absl::StatusOr<std::unique_ptr<tandem::HttpServer>> health =
      tandem::HttpServer::Create(options->health.text);
  for (const auto* server : {&metrics, &admin, &health}) {
    if (!server->ok()) {
      std::fprintf(stderr, "tandem-proxy: %s\n",
                   std::string(server->status().message()).c_str());
      return 1;
    }
  }
  auto metrics_handler = [p, &sds, &policy](const HttpRequest&) {
    std::string body = p->RenderMetrics();
    if (sds) body += sds->RenderMetrics();
    if (policy) body += policy->RenderMetrics();
    return HttpResponse{200, body, "text/plain; version=0.0.4; charset=utf-8"};
  };
  auto ready_handler = [p](const HttpRequest&) {
    if (p->ready()) return HttpResponse{200, "ready\n"};
    return HttpResponse{503, p->listening() ? "no certificate yet\n" : "not listening\n"};
  };
  auto live_handler = [](const HttpRequest&) { return HttpResponse{200, "live\n"}; };
  for (auto* server : {metrics->get(), admin->get(), health->get()}) {
    server->Handle("/metrics", metrics_handler);
    server->Handle("/healthz/ready", ready_handler);
    server->Handle("/healthz/live", live_handler);
  }
  (*admin)->Handle("/certs", [p](const HttpRequest&) {
    std::shared_ptr<tandem::proxy::TlsSnapshot> s = p->tls().Current();
    if (!s) return HttpResponse{200, "{\"certificate\": null}\n", "application/json"};
    return HttpResponse{
        200,
        absl::StrCat("{\"spiffe_id\": \"", s->identity.ToString(), "\", \"serial\": \"",
                     s->leaf.SerialHex(), "\", \"issuer\": \"", s->leaf.Issuer(),
                     "\", \"not_before\": ", absl::ToUnixSeconds(s->leaf.not_before()),
                     ", \"not_after\": ", absl::ToUnixSeconds(s->leaf.not_after()),
                     ", \"generation\": ", s->generation,
                     ", \"roots\": ", s->bundle.roots().size(), "}\n"),
        "application/json"};
  });
  (*admin)->Handle("/config", [json](const HttpRequest&) {
    return HttpResponse{200, json, "application/json"};
  });
  (*admin)->Handle("/policy", [p](const HttpRequest&) {
    return HttpResponse{200, p->policy()->ToJson(), "application/json"};
  });
  (*admin)->Handle("/connections", [p](const HttpRequest&) {
    return HttpResponse{200, absl::StrCat("{\"open\": ", p->open_connections(), "}\n"),
                        "application/json"};
  });
  auto post_signal = [](int sig) {
    return [sig](const HttpRequest& r) {
      if (r.method != "POST") return HttpResponse{405, "use POST\n"};
      kill(getpid(), sig);
      return HttpResponse{200, "ok\n"};
    };
  };
  (*admin)->Handle("/drain", post_signal(SIGTERM));
  (*admin)->Handle("/quitquitquit", post_signal(SIGTERM));
  (*metrics)->Start();
  (*admin)->Start();
  (*health)->Start();
  std::fprintf(stderr, "tandem-proxy: outbound %s inbound %s metrics %s admin %s\n",
               options->outbound.text.c_str(), options->inbound.text.c_str(),
               options->metrics.text.c_str(), options->admin.text.c_str());

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      if (pem_mode) {
        absl::Status s = LoadPemFiles(*options, *p);
        std::fprintf(stderr, "tandem-proxy: SIGHUP: certificates %s%s\n",
                     s.ok() ? "reloaded" : "refused, keeping the current ones: ",
                     std::string(s.message()).c_str());
      }
      continue;
    }
    std::fprintf(stderr, "tandem-proxy: draining (%d open connections)\n",
                 p->open_connections());
    int cut = p->Drain();
    std::fprintf(
        stderr, "tandem-proxy: exiting, %d connections cut at the drain deadline\n", cut);
    break;
  }
  if (policy) policy->Stop();
  if (sds) sds->Stop();
  (*metrics)->Stop();
  (*admin)->Stop();
  (*health)->Stop();
  return 0;
}
