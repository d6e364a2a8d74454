// tandem-ca: the control plane's certificate authority. Flags live here only.
//
//   tandem-ca serve --root-dir=DIR [--root-dir-mode=owner-only|secret-volume]
//                   [--listen=0.0.0.0:15012] [--metrics=0.0.0.0:15014]
//                   [--health=HOST:PORT]  (probes apart from /metrics; default off)
//                   [--token-public-key=FILE] [--token-jwks=FILE]       (standalone)
//                   [--token-review [--kube-api-server=HOST:PORT --kube-ca-file=FILE
//                    --kube-token-file=FILE --kube-server-name=NAME]]    (Kubernetes)
//                   [--audience=istio-ca] [--issuer=ISS]
//                   [--trust-domain=cluster.local] [--default-ttl=1h] [--max-ttl=24h]
//                   [--extra-roots=FILE] [--root-reload-interval=5s]
//                   [--dns-names=a,b] [--ip-addresses=127.0.0.1]
//                   [--policy-file=FILE [--policy-poll=1s]]       (mesh policy stream)
//                   [--state-dir=DIR]                             (revocations)
//                   [--admin=127.0.0.1:15010]   (loopback: revocations, policy streams;
//                                                with --state-dir or --policy-file)
//                   [--injector-listen=0.0.0.0:15017 [--injector-dns-names=a,b]
//                    [--webhook-config=tandem-sidecar-injector]
//                    [--template=/etc/tandem/injection/sidecar-template.yaml]
//                    [--proxy-image=tandem/proxy:dev]
//                    [--sidecar-ca-address=tandem-ca.tandem-system.svc:15012]]
//                                                                 (injection webhook)
//                   [--policy-configmap=NS/NAME] [--revocations-configmap=NS/NAME]
//                   [--trust-root-configmap=tandem-ca-root
//                    [--trust-root-namespaces=tandem-injection=enabled]]
//                   [--leader-lease=tandem-system/tandem-ca [--pod-name=NAME]]
//                                                     (Kubernetes: docs/controlplane.md)
//                   [--log-level=info] [--log-format=text|json]
//   tandem-ca revoke --admin=ADDR (--cert=FILE | --serial=HEX --not-after=RFC3339 |
//                    --spiffe-id=ID) [--reason=TEXT]
//   tandem-ca revocations --admin=ADDR          lists the revocations in force
//   tandem-ca gen-signing-key --out=FILE        P-256 token signing key, mode 0600
//   tandem-ca public-key --key=FILE             its public half, for --token-public-key
//   tandem-ca mint-token --key=FILE --namespace=NS --service-account=SA
//                        [--audience=istio-ca] [--issuer=ISS] [--ttl=1h]
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/http/http_server.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/process.h"
#include "controlplane/auth/jwt.h"
#include "controlplane/auth/signing_key.h"
#include "controlplane/auth/token_review_authenticator.h"
#include "controlplane/injection/admission_review.h"
#include "controlplane/injection/injector_endpoint.h"
#include "controlplane/injection/webhook_ca_bundle.h"
#include "controlplane/kube/informer.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/leader_elector.h"
#include "controlplane/kube/trust_root_publisher.h"
#include "controlplane/policy/policy_watcher.h"
#include "controlplane/revocation/admin_client.h"
#include "controlplane/revocation/configmap_revocation_backend.h"
#include "controlplane/revocation/revocation_admin.h"
#include "controlplane/revocation/revocation_store.h"
#include "controlplane/serve_flags.h"
#include "controlplane/server/ca_server.h"

namespace {

using tandem::controlplane::CaServer;
using tandem::controlplane::CaServerOptions;

bool ReadFile(const std::string& path, std::string* out) {
  absl::StatusOr<std::string> text = tandem::ReadFileToString(path);
  if (!text.ok()) return false;
  *out = *std::move(text);
  return true;
}

int Fail(const std::string& message) {
  tandem::log::Error("ca", message);
  return 2;
}

// A positive duration flag into *out (left as is when the flag is absent).
bool Duration(const tandem::Flags& flags, const std::string& name, absl::Duration* out) {
  absl::StatusOr<absl::Duration> d = flags.GetDuration(name, *out, absl::Milliseconds(1));
  if (!d.ok()) return false;
  *out = *d;
  return true;
}

using tandem::controlplane::ConfigMapRevocationBackend;
using tandem::controlplane::Informer;
using tandem::controlplane::InjectorEndpoint;
using tandem::controlplane::KubeClient;
using tandem::controlplane::LeaderElector;
using tandem::controlplane::PolicyWatcher;
using tandem::controlplane::RevocationAdmin;
using tandem::controlplane::RevocationStore;
using tandem::controlplane::TokenReviewAuthenticator;
using tandem::controlplane::TrustRootPublisher;
using tandem::controlplane::WebhookCaBundlePublisher;
using tandem::http::HttpRequest;
using tandem::http::HttpResponse;
using tandem::http::HttpServer;

absl::Status Refused(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

// The part of a status after the flag it names: "--FLAG: <message>".
absl::Status Named(const std::string& flag, const absl::Status& status) {
  return absl::Status(status.code(), flag + ": " + std::string(status.message()));
}

// "NAMESPACE/NAME" into its parts, or empty parts.
std::pair<std::string, std::string> ObjectRef(const std::string& ref) {
  std::vector<std::string> parts = absl::StrSplit(ref, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return {};
  return {parts[0], parts[1]};
}

// An HTTP server on `address` with the probes' two answers; `flag` names it in refusals.
absl::StatusOr<std::unique_ptr<HttpServer>> ProbeServer(const std::string& flag,
                                                        const std::string& name,
                                                        const std::string& address) {
  HttpServer::Options http_options;
  http_options.name = name;
  http_options.registry = &tandem::metrics::Registry::Default();
  if (absl::Status s = tandem::http::SetListenAddress(address, &http_options); !s.ok()) {
    return Named(flag, s);
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Create(http_options);
  if (!http.ok()) return Named(flag, http.status());
  (*http)->Handle("/healthz/ready", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "ready\n"};
  });
  (*http)->Handle("/healthz/live", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "live\n"};
  });
  return http;
}

// Everything `tandem-ca serve` runs, each part opened or started from its flags. Every
// step returns the refusal Serve logs before exiting 2; Stop() stops the parts so that
// writers finish before the Lease is released. Main thread only.
class CaProcess {
 public:
  explicit CaProcess(const tandem::Flags& flags) : flags_(flags) {}
  // Stops what a failed Start left running: the CA's reload thread calls the injector.
  ~CaProcess() { Stop(); }

  // The mesh policy and the revocations: files standalone, ConfigMaps in a cluster.
  absl::Status OpenStores(CaServerOptions* options);
  // The gRPC server and everything that serves beside it.
  absl::Status Start(const CaServerOptions& options);
  void Stop();
  int grpc_port() const { return server_->port(); }

 private:
  std::string Get(const char* name, const std::string& fallback = "") const {
    return flags_.Get(name, fallback);
  }
  // One client for every ConfigMap and Lease flag, made when the first needs it.
  absl::StatusOr<KubeClient*> Kube(const std::string& flag);
  // A watched copy of one ConfigMap (fieldSelector metadata.name, so RBAC may limit it).
  std::unique_ptr<Informer> WatchConfigMap(const std::string& ns, const std::string& name,
                                           Informer::Handler on_event);
  absl::Status OpenPolicy(CaServerOptions* options);
  absl::Status OpenRevocations(CaServerOptions* options);
  absl::Status StartHttp();
  absl::Status StartInjector();
  absl::Status StartLeaderElection();
  // After the Lease: only its holder writes the caBundle.
  absl::Status StartWebhookCaBundle();
  absl::Status StartTrustRoots();
  absl::Status StartAdmin();

  const tandem::Flags& flags_;
  std::unique_ptr<KubeClient> kube_;
  std::unique_ptr<PolicyWatcher> policy_;
  std::unique_ptr<Informer> policy_informer_;
  std::unique_ptr<RevocationStore> revocations_;
  std::unique_ptr<Informer> revocation_informer_;
  std::unique_ptr<CaServer> server_;
  std::unique_ptr<HttpServer> metrics_;
  std::unique_ptr<HttpServer> health_;
  std::unique_ptr<InjectorEndpoint> injector_;
  std::string webhook_service_;  // the injector's first DNS name
  std::unique_ptr<WebhookCaBundlePublisher> ca_bundle_;
  std::unique_ptr<LeaderElector> elector_;
  std::unique_ptr<TrustRootPublisher> trust_roots_;
  std::unique_ptr<RevocationAdmin> admin_;
};

absl::StatusOr<KubeClient*> CaProcess::Kube(const std::string& flag) {
  if (kube_) return kube_.get();
  absl::StatusOr<TokenReviewAuthenticator::Options> api =
      tandem::controlplane::KubeApiOptionsFromFlags(flags_);
  if (!api.ok()) return Named(flag, api.status());
  KubeClient::Options client;
  client.api_server = api->api_server;
  client.ca_pem = api->ca_pem;
  client.server_name = api->server_name;
  client.token_path = api->credential_token_path;
  client.token = api->credential_token;
  absl::StatusOr<std::unique_ptr<KubeClient>> made = KubeClient::Create(client);
  if (!made.ok()) return Named(flag, made.status());
  kube_ = *std::move(made);
  return kube_.get();
}

std::unique_ptr<Informer> CaProcess::WatchConfigMap(const std::string& ns,
                                                    const std::string& name,
                                                    Informer::Handler on_event) {
  Informer::Options watch;
  watch.client = kube_.get();
  watch.collection = absl::StrCat("/api/v1/namespaces/", ns,
                                  "/configmaps?fieldSelector=metadata.name%3D", name);
  watch.on_event = std::move(on_event);
  auto informer = std::make_unique<Informer>(std::move(watch));
  informer->Start();
  return informer;
}

absl::Status CaProcess::OpenStores(CaServerOptions* options) {
  if (absl::Status s = OpenPolicy(options); !s.ok()) return s;
  if (absl::Status s = OpenRevocations(options); !s.ok()) return s;
  if (flags_.Has("admin") && !policy_ && !revocations_) {
    return Refused(
        "--admin serves revocations and the policy streams: give --state-dir=DIR, "
        "--revocations-configmap=NS/NAME, --policy-file=FILE or "
        "--policy-configmap=NS/NAME "
        "too");
  }
  return absl::OkStatus();
}

absl::Status CaProcess::OpenPolicy(CaServerOptions* options) {
  if (flags_.Has("policy-file") && flags_.Has("policy-configmap")) {
    return Refused("--policy-file or --policy-configmap: one source of the mesh policy");
  }
  if (flags_.Has("policy-file")) {
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create(Get("policy-file"));
    if (!watcher.ok()) return Named("--policy-file", watcher.status());
    policy_ = *std::move(watcher);
  } else if (flags_.Has("policy-configmap")) {
    auto [ns, name] = ObjectRef(Get("policy-configmap"));
    if (ns.empty()) return Refused("--policy-configmap: NAMESPACE/NAME of the ConfigMap");
    if (absl::StatusOr<KubeClient*> client = Kube("--policy-configmap"); !client.ok()) {
      return client.status();
    }
    policy_informer_ = WatchConfigMap(ns, name, nullptr);
    // The CA must not serve without its policy: wait for the first list.
    for (absl::Time until = absl::Now() + absl::Seconds(30);
         !policy_informer_->synced() && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    const std::string key = ns + "/" + name;
    Informer* copy = policy_informer_.get();
    // The policy server's poll reads the watched copy: no request per poll.
    PolicyWatcher::Reader read = [copy, key]() -> absl::StatusOr<std::string> {
      std::optional<nlohmann::json> cm = copy->Get(key);
      if (!cm) return absl::NotFoundError("configmap " + key + " does not exist");
      auto data = cm->find("data");
      if (data == cm->end() || !data->is_object() ||
          !data->contains("mesh-policy.yaml") ||
          !(*data)["mesh-policy.yaml"].is_string()) {
        return absl::NotFoundError("configmap " + key + " has no key mesh-policy.yaml");
      }
      return (*data)["mesh-policy.yaml"].get<std::string>();
    };
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create("configmap " + key, std::move(read));
    if (!watcher.ok()) return Named("--policy-configmap", watcher.status());
    policy_ = *std::move(watcher);
  }
  options->policy = policy_.get();
  return absl::OkStatus();
}

absl::Status CaProcess::OpenRevocations(CaServerOptions* options) {
  if (flags_.Has("state-dir") && flags_.Has("revocations-configmap")) {
    return Refused("--state-dir or --revocations-configmap: one home for revocations");
  }
  if (flags_.Has("state-dir")) {
    absl::StatusOr<std::unique_ptr<RevocationStore>> store =
        RevocationStore::Open({Get("state-dir"), options->core.max_ttl}, absl::Now());
    if (!store.ok()) return Named("--state-dir", store.status());
    revocations_ = *std::move(store);
  } else if (flags_.Has("revocations-configmap")) {
    auto [ns, name] = ObjectRef(Get("revocations-configmap"));
    if (ns.empty()) {
      return Refused("--revocations-configmap: NAMESPACE/NAME of the ConfigMap");
    }
    absl::StatusOr<KubeClient*> client = Kube("--revocations-configmap");
    if (!client.ok()) return client.status();
    absl::StatusOr<std::unique_ptr<RevocationStore>> store = RevocationStore::Open(
        std::make_unique<ConfigMapRevocationBackend>(*client, ns, name),
        options->core.max_ttl, absl::Now());
    if (!store.ok()) return Named("--revocations-configmap", store.status());
    revocations_ = *std::move(store);
    // What another replica revokes reaches this one through the watch.
    RevocationStore* shared = revocations_.get();
    revocation_informer_ = WatchConfigMap(
        ns, name, [shared](Informer::EventType type, const nlohmann::json& cm) {
          absl::StatusOr<bool> changed =
              shared->Reload(type == Informer::EventType::kDeleted
                                 ? ""
                                 : ConfigMapRevocationBackend::ListOf(cm),
                             absl::Now());
          if (!changed.ok()) {
            tandem::log::Error("ca", "revocation list refused, keeping the last good one",
                               {{"error", std::string(changed.status().message())}});
          } else if (*changed) {
            tandem::log::Info("ca", "revocation list changed",
                              {{"revocations", shared->Live(absl::Now()).size()}});
          }
        });
  }
  options->revocations = revocations_.get();
  return absl::OkStatus();
}

absl::Status CaProcess::Start(const CaServerOptions& options) {
  absl::StatusOr<std::unique_ptr<CaServer>> server = CaServer::Create(options);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  if (absl::Status s = server_->Start(); !s.ok()) return s;
  tandem::log::Listening("ca", "grpc", options.listen_address, server_->port());
  for (absl::Status (CaProcess::*step)() :
       {&CaProcess::StartHttp, &CaProcess::StartInjector, &CaProcess::StartLeaderElection,
        &CaProcess::StartWebhookCaBundle, &CaProcess::StartTrustRoots,
        &CaProcess::StartAdmin}) {
    if (absl::Status s = (this->*step)(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CaProcess::StartHttp() {
  if (std::string address = Get("metrics", "0.0.0.0:15014"); !address.empty()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        ProbeServer("--metrics", "ca", address);
    if (!http.ok()) return http.status();
    metrics_ = *std::move(http);
    CaServer* ca = server_.get();
    metrics_->Handle("/metrics", [ca](const HttpRequest&) {
      return HttpResponse{
          200, "text/plain; version=0.0.4; charset=utf-8",
          ca->RenderMetrics() + tandem::metrics::Registry::Default().RenderPrometheus()};
    });
    metrics_->Handle("/trust-bundle", [ca](const HttpRequest&) {
      return HttpResponse{200, "application/x-pem-file", ca->core().trust_bundle_pem()};
    });
    if (absl::Status s = metrics_->Start(); !s.ok()) return Named("--metrics", s);
    tandem::log::Listening("ca", "metrics", address, metrics_->port());
  }
  // Probes on a server of their own: a scrape storm on --metrics (each /metrics renders
  // on the server's one thread) cannot delay a kubelet probe.
  if (std::string address = Get("health"); !address.empty()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        ProbeServer("--health", "ca_health", address);
    if (!http.ok()) return http.status();
    health_ = *std::move(http);
    if (absl::Status s = health_->Start(); !s.ok()) return Named("--health", s);
    tandem::log::Listening("ca", "health", address, health_->port());
  }
  return absl::OkStatus();
}

absl::Status CaProcess::StartInjector() {
  std::string address = Get("injector-listen");
  if (address.empty()) {
    if (flags_.Has("webhook-config") || flags_.Has("injector-dns-names") ||
        flags_.Has("template") || flags_.Has("proxy-image") ||
        flags_.Has("sidecar-ca-address")) {
      return Refused(
          "--webhook-config, --injector-dns-names, --template, --proxy-image and "
          "--sidecar-ca-address need --injector-listen");
    }
    return absl::OkStatus();
  }
  InjectorEndpoint::Options injector_options;
  injector_options.listen_address = address;
  injector_options.registry = &tandem::metrics::Registry::Default();
  if (flags_.Has("injector-dns-names")) {
    injector_options.dns_names =
        absl::StrSplit(Get("injector-dns-names"), ',', absl::SkipEmpty());
  }
  // The same library and template as `tandemctl kube-inject` (docs/injection.md).
  tandem::injection::InjectorOptions inject_options;
  inject_options.template_name =
      Get("template", "/etc/tandem/injection/sidecar-template.yaml");
  absl::StatusOr<std::string> template_yaml =
      tandem::ReadFileToString(inject_options.template_name);
  if (!template_yaml.ok()) return Named("--template", template_yaml.status());
  inject_options.template_yaml = *std::move(template_yaml);
  inject_options.proxy_image = Get("proxy-image", inject_options.proxy_image);
  // Where injected agents dial this CA; their TLS check keeps the Service's name.
  inject_options.ca_address = Get("sidecar-ca-address", inject_options.ca_address);
  absl::StatusOr<std::unique_ptr<tandem::injection::Injector>> made =
      tandem::injection::Injector::Create(std::move(inject_options));
  if (!made.ok()) return Named("--template", made.status());
  // Shared: the handler is a copyable std::function; the Injector is immutable.
  std::shared_ptr<const tandem::injection::Injector> injection = *std::move(made);
  absl::StatusOr<std::unique_ptr<InjectorEndpoint>> created = InjectorEndpoint::Create(
      injector_options, &server_->core(), [injection](const HttpRequest& request) {
        tandem::injection::AdmissionResult review =
            tandem::injection::ReviewAdmission(request.body, *injection);
        return HttpResponse{review.http_status, std::move(review.content_type),
                            std::move(review.body)};
      });
  if (!created.ok()) return Named("--injector-listen", created.status());
  injector_ = *std::move(created);
  if (absl::Status s = injector_->Start(); !s.ok()) return Named("--injector-listen", s);
  // A new signing root: the webhook's certificate follows at once, not at its renewal.
  server_->OnRootReload([injector = injector_.get()] { injector->RenewNow(); });
  // The API server dials the webhook's Service as <name>.<namespace>.svc: the first
  // DNS name says which Service our webhook entries point to (StartWebhookCaBundle).
  webhook_service_ = injector_options.dns_names.front();
  tandem::log::Listening("ca", "injector", address, injector_->port());
  return absl::OkStatus();
}

absl::Status CaProcess::StartWebhookCaBundle() {
  std::string config = Get("webhook-config", "tandem-sidecar-injector");
  if (!injector_ || config.empty()) return absl::OkStatus();
  std::vector<std::string> labels = absl::StrSplit(webhook_service_, '.');
  if (labels.size() < 3 || labels[2] != "svc") {
    return Refused(
        "--injector-dns-names: the first name must be <service>.<namespace>.svc to "
        "fill --webhook-config's caBundle (or give --webhook-config=)");
  }
  absl::StatusOr<KubeClient*> client = Kube("--webhook-config");
  if (!client.ok()) {
    return Refused(std::string(client.status().message()) +
                   "; --webhook-config= leaves the caBundle to someone else");
  }
  WebhookCaBundlePublisher::Options publish;
  publish.client = *client;
  publish.config_name = config;
  publish.service = {labels[0], labels[1]};
  // Read at every check: tandem-ca's bundle changes when it reloads its root files.
  publish.ca_bundle_source = [core = &server_->core()] {
    return core->trust_bundle_pem();
  };
  // With replicas, only the Lease's holder writes, as for the trust-root ConfigMaps.
  if (LeaderElector* e = elector_.get())
    publish.may_write = [e] { return e->is_leader(); };
  publish.registry = &tandem::metrics::Registry::Default();
  absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>> publisher =
      WebhookCaBundlePublisher::Create(publish);
  if (!publisher.ok()) return Named("--webhook-config", publisher.status());
  ca_bundle_ = *std::move(publisher);
  ca_bundle_->Start();
  return absl::OkStatus();
}

absl::Status CaProcess::StartLeaderElection() {
  std::string lease = Get("leader-lease");
  if (lease.empty()) {
    if (flags_.Has("pod-name")) {
      return Refused("--pod-name names this replica in --leader-lease: give that too");
    }
    return absl::OkStatus();
  }
  auto [ns, name] = ObjectRef(lease);
  if (ns.empty()) return Refused("--leader-lease: NAMESPACE/NAME of the Lease");
  absl::StatusOr<KubeClient*> client = Kube("--leader-lease");
  if (!client.ok()) return client.status();
  LeaderElector::Options election;
  election.client = *client;
  election.ns = ns;
  election.name = name;
  // The pod's name: unique among replicas, and what an operator sees in the Lease.
  const char* pod = std::getenv("POD_NAME");
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  election.identity = Get("pod-name", pod != nullptr && *pod ? pod : host);
  election.registry = &tandem::metrics::Registry::Default();
  absl::StatusOr<std::unique_ptr<LeaderElector>> made = LeaderElector::Create(election);
  if (!made.ok()) return Named("--leader-lease", made.status());
  elector_ = *std::move(made);
  elector_->Start();
  return absl::OkStatus();
}

absl::Status CaProcess::StartTrustRoots() {
  std::string name = Get("trust-root-configmap");
  if (name.empty()) {
    if (flags_.Has("trust-root-namespaces")) {
      return Refused("--trust-root-namespaces needs --trust-root-configmap");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<KubeClient*> client = Kube("--trust-root-configmap");
  if (!client.ok()) return client.status();
  TrustRootPublisher::Options publish;
  publish.client = *client;
  publish.bundle = [core = &server_->core()] { return core->trust_bundle_pem(); };
  publish.configmap_name = name;
  publish.namespace_selector = Get("trust-root-namespaces", publish.namespace_selector);
  // With replicas, only the Lease's holder writes: two writers of one object would
  // fight over it on every edit.
  if (LeaderElector* e = elector_.get())
    publish.may_write = [e] { return e->is_leader(); };
  publish.registry = &tandem::metrics::Registry::Default();
  absl::StatusOr<std::unique_ptr<TrustRootPublisher>> made =
      TrustRootPublisher::Create(publish);
  if (!made.ok()) return Named("--trust-root-configmap", made.status());
  trust_roots_ = *std::move(made);
  trust_roots_->Start();
  return absl::OkStatus();
}

absl::Status CaProcess::StartAdmin() {
  std::string address = Get("admin", "127.0.0.1:15010");
  if ((!revocations_ && !policy_) || address.empty()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<RevocationAdmin>> created =
      RevocationAdmin::Create({address, revocations_.get(), policy_.get()});
  if (!created.ok()) return Named("--admin", created.status());
  admin_ = *std::move(created);
  // `tandemctl proxy-status` and `tandemctl check` read these two.
  if (const tandem::controlplane::PolicyServer* streams = server_->policy_server()) {
    admin_->Handle("/policy-streams", [streams](const HttpRequest&) {
      return HttpResponse{200, "application/json", streams->StreamsJson()};
    });
  }
  CaServer* ca = server_.get();
  admin_->Handle("/trust-bundle", [ca](const HttpRequest&) {
    return HttpResponse{200, "application/x-pem-file", ca->core().trust_bundle_pem()};
  });
  if (absl::Status s = admin_->Start(); !s.ok()) return s;
  tandem::log::Listening("ca", "admin", address, admin_->port());
  tandem::log::Info("ca", "admin serving",
                    {{"address", address}, {"port", admin_->port()}});
  return absl::OkStatus();
}

void CaProcess::Stop() {
  if (revocation_informer_) revocation_informer_->Stop();
  if (policy_informer_) policy_informer_->Stop();
  if (admin_) admin_->Stop();
  if (trust_roots_) trust_roots_->Stop();
  if (ca_bundle_) ca_bundle_->Stop();
  // Last of the writers: releasing the Lease lets another replica lead at once.
  if (elector_) elector_->Stop();
  if (injector_) injector_->Stop();
  if (metrics_) metrics_->Stop();
  if (health_) health_->Stop();
  if (server_) server_->Stop();
}

int Serve(const tandem::Flags& flags) {
  absl::StatusOr<CaServerOptions> parsed =
      tandem::controlplane::CaServerOptionsFromFlags(flags);
  if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
  CaServerOptions options = *std::move(parsed);
  CaProcess process(flags);
  if (absl::Status s = process.OpenStores(&options); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  // Blocked before any thread starts, so that every thread inherits the mask and the
  // signals wait for sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (absl::Status s = process.Start(options); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  const char* mode =
      !options.token_review.api_server.empty() ? "TokenReview"
      : !options.token_public_key_pem.empty() || !options.token_jwks_json.empty()
          ? "JWT public keys"
          : "none (certificate renewals only)";
  tandem::log::Info("ca", "serving IstioCertificateService",
                    {{"port", process.grpc_port()},
                     {"trust_domain", options.core.trust_domain},
                     {"token_authority", mode}});
  int sig;
  sigwait(&signals, &sig);
  tandem::log::Info("ca", "shutting down");
  process.Stop();
  return 0;
}

// `tandem-ca revoke` / `tandem-ca revocations`: one request to the admin endpoint.
int Revoke(const std::string& command, const tandem::Flags& flags) {
  using tandem::controlplane::AdminClient;
  auto get = [&](const char* name) { return flags.Get(name); };
  std::string admin = get("admin");
  if (admin.empty())
    return Fail(command + ": --admin=ADDR is required (e.g. 127.0.0.1:15010)");
  absl::StatusOr<AdminClient::Reply> reply;
  if (command == "revocations") {
    reply = AdminClient::Call(admin, "GET", "/revocations", "");
  } else {
    const int targets = flags.Has("cert") + flags.Has("serial") + flags.Has("spiffe-id");
    if (targets != 1) {
      return Fail(
          "revoke: give one of --cert=FILE, --serial=HEX --not-after=RFC3339, "
          "--spiffe-id=ID");
    }
    std::string body;
    if (flags.Has("cert")) {
      std::string pem;
      if (!ReadFile(get("cert"), &pem)) return Fail("revoke: cannot read --cert");
      absl::StatusOr<std::string> from_cert =
          AdminClient::RevokeCertificateBody(pem, get("reason"));
      if (!from_cert.ok()) {
        return Fail("revoke: --cert: " + std::string(from_cert.status().message()));
      }
      body = *from_cert;
    } else if (flags.Has("serial")) {
      if (!flags.Has("not-after")) return Fail("revoke: --serial needs --not-after");
      body =
          AdminClient::RevokeSerialBody(get("serial"), get("not-after"), get("reason"));
    } else {
      body = AdminClient::RevokeSpiffeIdBody(get("spiffe-id"), get("reason"));
    }
    reply = AdminClient::Call(admin, "POST", "/revoke", body);
  }
  if (!reply.ok()) return Fail(command + ": " + std::string(reply.status().message()));
  std::fputs(reply->body.c_str(), reply->status == 200 ? stdout : stderr);
  return reply->status == 200 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::PrepareProcess();
  const std::string command = argc > 1 ? argv[1] : "";
  static const std::map<std::string, std::vector<std::string_view>> kFlags = {
      {"serve",
       {"root-dir",
        "root-dir-mode",
        "listen",
        "metrics",
        "health",
        "token-public-key",
        "token-jwks",
        "token-review",
        "kube-api-server",
        "kube-ca-file",
        "kube-token-file",
        "kube-server-name",
        "audience",
        "issuer",
        "trust-domain",
        "default-ttl",
        "max-ttl",
        "extra-roots",
        "root-reload-interval",
        "dns-names",
        "ip-addresses",
        "policy-file",
        "policy-poll",
        "state-dir",
        "admin",
        "injector-listen",
        "injector-dns-names",
        "webhook-config",
        "template",
        "proxy-image",
        "sidecar-ca-address",
        "policy-configmap",
        "revocations-configmap",
        "trust-root-configmap",
        "trust-root-namespaces",
        "leader-lease",
        "pod-name",
        "log-level",
        "log-format"}},
      {"gen-signing-key", {"out"}},
      {"public-key", {"key"}},
      {"mint-token",
       {"key", "namespace", "service-account", "audience", "issuer", "ttl"}},
      {"revoke", {"admin", "cert", "serial", "not-after", "spiffe-id", "reason"}},
      {"revocations", {"admin"}},
  };
  auto known = kFlags.find(command);
  if (known == kFlags.end()) {
    std::fprintf(stderr,
                 "usage: tandem-ca serve|gen-signing-key|public-key|mint-token|revoke|"
                 "revocations [--flags]\n"
                 "(see controlplane/main.cc or docs/controlplane.md)\n");
    return 2;
  }
  absl::StatusOr<tandem::Flags> parsed =
      tandem::Flags::Parse(argc, argv, 2, known->second);
  if (!parsed.ok()) return Fail(command + ": " + std::string(parsed.status().message()));
  const tandem::Flags& flags = *parsed;
  if (absl::Status s =
          tandem::log::ConfigureDefault(flags.Get("log-level"), flags.Get("log-format"));
      !s.ok()) {
    return Fail(std::string(s.message()));
  }
  auto get = [&](const char* name, const std::string& fallback) {
    return flags.Get(name, fallback);
  };
  if (command == "serve") return Serve(flags);
  if (command == "gen-signing-key") {
    std::string out = get("out", "");
    if (out.empty()) return Fail("gen-signing-key: --out=FILE is required");
    absl::Status s = tandem::controlplane::WriteNewSigningKey(out);
    return s.ok() ? 0 : Fail(std::string(s.message()));
  }
  if (command == "public-key") {
    std::string key;
    if (!ReadFile(get("key", ""), &key)) return Fail("public-key: cannot read --key");
    absl::StatusOr<std::string> pub = tandem::controlplane::PublicKeyPemOf(key);
    if (!pub.ok()) return Fail(std::string(pub.status().message()));
    std::fputs(pub->c_str(), stdout);
    return 0;
  }
  if (command == "mint-token") {
    std::string key;
    if (!ReadFile(get("key", ""), &key)) return Fail("mint-token: cannot read --key");
    absl::Duration ttl = absl::Hours(1);
    if (!Duration(flags, "ttl", &ttl)) return Fail("mint-token: bad --ttl");
    absl::StatusOr<std::string> token = tandem::controlplane::MintServiceAccountToken(
        key, {get("namespace", "default"), get("service-account", "default")},
        get("audience", "istio-ca"), get("issuer", "tandem"), absl::Now(), ttl);
    if (!token.ok()) return Fail(std::string(token.status().message()));
    std::printf("%s\n", token->c_str());
    return 0;
  }
  return Revoke(command, flags);  // revoke, revocations
}
