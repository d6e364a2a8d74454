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
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/leader_elector.h"
#include "controlplane/kube/trust_root_publisher.h"
#include "controlplane/policy/policy_watcher.h"
#include "controlplane/kube/informer.h"
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

int Serve(const tandem::Flags& flags) {
  absl::StatusOr<CaServerOptions> parsed =
      tandem::controlplane::CaServerOptionsFromFlags(flags);
  if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
  CaServerOptions options = *std::move(parsed);
  auto get = [&](const char* name, const std::string& fallback) {
    return flags.Get(name, fallback);
  };
  using tandem::controlplane::TokenReviewAuthenticator;
  auto kube_api = [&] { return tandem::controlplane::KubeApiOptionsFromFlags(flags); };
  // In a cluster, the Kubernetes API is the store shared by every replica.
  using tandem::controlplane::KubeClient;
  using tandem::controlplane::LeaderElector;
  using tandem::controlplane::TrustRootPublisher;
  std::unique_ptr<KubeClient> kube;
  auto kube_client = [&](const std::string& flag) -> absl::StatusOr<KubeClient*> {
    if (kube) return kube.get();
    absl::StatusOr<TokenReviewAuthenticator::Options> api = kube_api();
    if (!api.ok())
      return absl::Status(api.status().code(),
                          flag + ": " + std::string(api.status().message()));
    KubeClient::Options client;
    client.api_server = api->api_server;
    client.ca_pem = api->ca_pem;
    client.server_name = api->server_name;
    client.token_path = api->credential_token_path;
    client.token = api->credential_token;
    absl::StatusOr<std::unique_ptr<KubeClient>> made = KubeClient::Create(client);
    if (!made.ok())
      return absl::Status(made.status().code(),
                          flag + ": " + std::string(made.status().message()));
    kube = *std::move(made);
    return kube.get();
  };
  // Revocations and the mesh policy, in objects every replica lists and watches.
  using tandem::controlplane::ConfigMapRevocationBackend;
  using tandem::controlplane::Informer;
  using tandem::controlplane::PolicyWatcher;
  using tandem::controlplane::RevocationAdmin;
  using tandem::controlplane::RevocationStore;
  // "NAMESPACE/NAME" of a ConfigMap flag, or empty parts.
  auto configmap_ref = [&](const char* flag) -> std::pair<std::string, std::string> {
    std::vector<std::string> parts = absl::StrSplit(get(flag, ""), '/');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return {};
    return {parts[0], parts[1]};
  };
  // A watched copy of one ConfigMap (fieldSelector metadata.name, so RBAC may limit it).
  auto watch_configmap = [&](const std::string& ns, const std::string& name,
                             Informer::Handler on_event) {
    Informer::Options watch;
    watch.client = kube.get();
    watch.collection = absl::StrCat("/api/v1/namespaces/", ns,
                                    "/configmaps?fieldSelector=metadata.name%3D", name);
    watch.on_event = std::move(on_event);
    auto informer = std::make_unique<Informer>(std::move(watch));
    informer->Start();
    return informer;
  };
  std::unique_ptr<PolicyWatcher> policy;
  std::unique_ptr<Informer> policy_informer;
  if (flags.Has("policy-file") && flags.Has("policy-configmap")) {
    return Fail("--policy-file or --policy-configmap: one source of the mesh policy");
  }
  if (flags.Has("policy-file")) {
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create(get("policy-file", ""));
    if (!watcher.ok())
      return Fail("--policy-file: " + std::string(watcher.status().message()));
    policy = *std::move(watcher);
    options.policy = policy.get();
  } else if (flags.Has("policy-configmap")) {
    auto [ns, name] = configmap_ref("policy-configmap");
    if (ns.empty()) return Fail("--policy-configmap: NAMESPACE/NAME of the ConfigMap");
    absl::StatusOr<KubeClient*> client = kube_client("--policy-configmap");
    if (!client.ok()) return Fail(std::string(client.status().message()));
    policy_informer = watch_configmap(ns, name, nullptr);
    // The CA must not serve without its policy: wait for the first list.
    for (absl::Time until = absl::Now() + absl::Seconds(30);
         !policy_informer->synced() && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    const std::string key = ns + "/" + name;
    Informer* copy = policy_informer.get();
    // The policy server's poll reads the watched copy: no request per poll.
    PolicyWatcher::Reader read = [copy, key]() -> absl::StatusOr<std::string> {
      std::optional<nlohmann::json> cm = copy->Get(key);
      if (!cm) return absl::NotFoundError("configmap " + key + " does not exist");
      auto data = cm->find("data");
      if (data == cm->end() || !data->is_object() || !data->contains("mesh-policy.yaml") ||
          !(*data)["mesh-policy.yaml"].is_string()) {
        return absl::NotFoundError("configmap " + key + " has no key mesh-policy.yaml");
      }
      return (*data)["mesh-policy.yaml"].get<std::string>();
    };
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create("configmap " + key, std::move(read));
    if (!watcher.ok())
      return Fail("--policy-configmap: " + std::string(watcher.status().message()));
    policy = *std::move(watcher);
    options.policy = policy.get();
  }
  std::unique_ptr<RevocationStore> revocations;
  std::unique_ptr<Informer> revocation_informer;
  if (flags.Has("state-dir") && flags.Has("revocations-configmap")) {
    return Fail("--state-dir or --revocations-configmap: one home for revocations");
  }
  if (flags.Has("state-dir")) {
    absl::StatusOr<std::unique_ptr<RevocationStore>> store =
        RevocationStore::Open({get("state-dir", ""), options.core.max_ttl}, absl::Now());
    if (!store.ok()) return Fail("--state-dir: " + std::string(store.status().message()));
    revocations = *std::move(store);
    options.revocations = revocations.get();
  } else if (flags.Has("revocations-configmap")) {
    auto [ns, name] = configmap_ref("revocations-configmap");
    if (ns.empty()) return Fail("--revocations-configmap: NAMESPACE/NAME of the ConfigMap");
    absl::StatusOr<KubeClient*> client = kube_client("--revocations-configmap");
    if (!client.ok()) return Fail(std::string(client.status().message()));
    absl::StatusOr<std::unique_ptr<RevocationStore>> store = RevocationStore::Open(
        std::make_unique<ConfigMapRevocationBackend>(*client, ns, name),
        options.core.max_ttl, absl::Now());
    if (!store.ok()) {
      return Fail("--revocations-configmap: " + std::string(store.status().message()));
    }
    revocations = *std::move(store);
    options.revocations = revocations.get();
    // What another replica revokes reaches this one through the watch.
    RevocationStore* shared = revocations.get();
    revocation_informer = watch_configmap(
        ns, name, [shared](Informer::EventType type, const nlohmann::json& cm) {
          absl::StatusOr<bool> changed = shared->Reload(
              type == Informer::EventType::kDeleted
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
  } else if (flags.Has("admin") && !policy) {
    return Fail(
        "--admin serves revocations and the policy streams: give --state-dir=DIR, "
        "--revocations-configmap=NS/NAME, --policy-file=FILE or --policy-configmap=NS/NAME "
        "too");
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<CaServer>> server = CaServer::Create(options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  if (absl::Status s = (*server)->Start(); !s.ok()) return Fail(std::string(s.message()));
  tandem::log::Listening("ca", "grpc", options.listen_address, (*server)->port());
  using tandem::http::HttpRequest;
  using tandem::http::HttpResponse;
  std::unique_ptr<tandem::http::HttpServer> metrics;
  if (std::string address = get("metrics", "0.0.0.0:15014"); !address.empty()) {
    tandem::http::HttpServer::Options http_options;
    http_options.name = "ca";
    http_options.registry = &tandem::metrics::Registry::Default();
    if (absl::Status s = tandem::http::SetListenAddress(address, &http_options);
        !s.ok()) {
      return Fail("--metrics: " + std::string(s.message()));
    }
    absl::StatusOr<std::unique_ptr<tandem::http::HttpServer>> http =
        tandem::http::HttpServer::Create(http_options);
    if (!http.ok()) return Fail("--metrics: " + std::string(http.status().message()));
    metrics = *std::move(http);
    CaServer* s = server->get();
    metrics->Handle("/metrics", [s](const HttpRequest&) {
      return HttpResponse{
          200, "text/plain; version=0.0.4; charset=utf-8",
          s->RenderMetrics() + tandem::metrics::Registry::Default().RenderPrometheus()};
    });
    metrics->Handle("/healthz/ready", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "ready\n"};
    });
    metrics->Handle("/healthz/live", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "live\n"};
    });
    metrics->Handle("/trust-bundle", [s](const HttpRequest&) {
      return HttpResponse{200, "application/x-pem-file", s->core().trust_bundle_pem()};
    });
    if (absl::Status st = metrics->Start(); !st.ok()) {
      return Fail("--metrics: " + std::string(st.message()));
    }
    tandem::log::Listening("ca", "metrics", address, metrics->port());
  }
  // Probes on a server of their own: a scrape storm on --metrics (each /metrics renders
  // on the server's one thread) cannot delay a kubelet probe.
  std::unique_ptr<tandem::http::HttpServer> health;
  if (std::string address = get("health", ""); !address.empty()) {
    tandem::http::HttpServer::Options http_options;
    http_options.name = "ca_health";
    http_options.registry = &tandem::metrics::Registry::Default();
    if (absl::Status s = tandem::http::SetListenAddress(address, &http_options);
        !s.ok()) {
      return Fail("--health: " + std::string(s.message()));
    }
    absl::StatusOr<std::unique_ptr<tandem::http::HttpServer>> http =
        tandem::http::HttpServer::Create(http_options);
    if (!http.ok()) return Fail("--health: " + std::string(http.status().message()));
    health = *std::move(http);
    health->Handle("/healthz/ready", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "ready\n"};
    });
    health->Handle("/healthz/live", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "live\n"};
    });
    if (absl::Status st = health->Start(); !st.ok()) {
      return Fail("--health: " + std::string(st.message()));
    }
    tandem::log::Listening("ca", "health", address, health->port());
  }
  using tandem::controlplane::InjectorEndpoint;
  using tandem::controlplane::WebhookCaBundlePublisher;
  std::unique_ptr<InjectorEndpoint> injector;
  std::unique_ptr<WebhookCaBundlePublisher> ca_bundle;
  if (std::string address = get("injector-listen", ""); !address.empty()) {
    InjectorEndpoint::Options injector_options;
    injector_options.listen_address = address;
    injector_options.registry = &tandem::metrics::Registry::Default();
    if (flags.Has("injector-dns-names")) {
      injector_options.dns_names =
          absl::StrSplit(get("injector-dns-names", ""), ',', absl::SkipEmpty());
    }
    // The same library and template as `tandemctl kube-inject` (docs/injection.md).
    tandem::injection::InjectorOptions inject_options;
    inject_options.template_name =
        get("template", "/etc/tandem/injection/sidecar-template.yaml");
    absl::StatusOr<std::string> template_yaml =
        tandem::ReadFileToString(inject_options.template_name);
    if (!template_yaml.ok()) {
      return Fail("--template: " + std::string(template_yaml.status().message()));
    }
    inject_options.template_yaml = *std::move(template_yaml);
    inject_options.proxy_image = get("proxy-image", inject_options.proxy_image);
    // Where injected agents dial this CA; their TLS check keeps the Service's name.
    inject_options.ca_address = get("sidecar-ca-address", inject_options.ca_address);
    absl::StatusOr<std::unique_ptr<tandem::injection::Injector>> made =
        tandem::injection::Injector::Create(std::move(inject_options));
    if (!made.ok()) return Fail("--template: " + std::string(made.status().message()));
    // Shared: the handler is a copyable std::function; the Injector is immutable.
    std::shared_ptr<const tandem::injection::Injector> injection = *std::move(made);
    absl::StatusOr<std::unique_ptr<InjectorEndpoint>> created = InjectorEndpoint::Create(
        injector_options, &(*server)->core(),
        [injection](const HttpRequest& request) {
          tandem::injection::AdmissionResult review =
              tandem::injection::ReviewAdmission(request.body, *injection);
          return HttpResponse{review.http_status, std::move(review.content_type),
                              std::move(review.body)};
        });
    if (!created.ok()) {
      return Fail("--injector-listen: " + std::string(created.status().message()));
    }
    injector = *std::move(created);
    if (absl::Status s = injector->Start(); !s.ok()) {
      return Fail("--injector-listen: " + std::string(s.message()));
    }
    if (std::string config = get("webhook-config", "tandem-sidecar-injector");
        !config.empty()) {
      // The API server dials the webhook's Service as <name>.<namespace>.svc: the
      // first DNS name says which Service our webhook entries point to.
      std::vector<std::string> labels =
          absl::StrSplit(injector_options.dns_names.front(), '.');
      if (labels.size() < 3 || labels[2] != "svc") {
        return Fail("--injector-dns-names: the first name must be <service>.<namespace>.svc"
                    " to fill --webhook-config's caBundle (or give --webhook-config=)");
      }
      absl::StatusOr<TokenReviewAuthenticator::Options> api = kube_api();
      if (!api.ok()) {
        return Fail("--webhook-config: " + std::string(api.status().message()) +
                    "; --webhook-config= leaves the caBundle to someone else");
      }
      WebhookCaBundlePublisher::Options publish;
      publish.api_server = api->api_server;
      publish.ca_pem = api->ca_pem;
      publish.server_name = api->server_name;
      publish.credential_token_path = api->credential_token_path;
      publish.credential_token = api->credential_token;
      publish.config_name = config;
      publish.service = {labels[0], labels[1]};
      // Read at every round: tandem-ca's bundle changes when it reloads its root files.
      publish.ca_bundle_source = [core = &(*server)->core()] {
        return core->trust_bundle_pem();
      };
      publish.registry = &tandem::metrics::Registry::Default();
      absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>> publisher =
          WebhookCaBundlePublisher::Create(publish);
      if (!publisher.ok()) {
        return Fail("--webhook-config: " + std::string(publisher.status().message()));
      }
      ca_bundle = *std::move(publisher);
      ca_bundle->Start();
    }
    tandem::log::Listening("ca", "injector", address, injector->port());
  } else if (flags.Has("webhook-config") || flags.Has("injector-dns-names") ||
             flags.Has("template") || flags.Has("proxy-image") ||
             flags.Has("sidecar-ca-address")) {
    return Fail(
        "--webhook-config, --injector-dns-names, --template, --proxy-image and "
        "--sidecar-ca-address need --injector-listen");
  }
  std::unique_ptr<LeaderElector> elector;
  if (std::string lease = get("leader-lease", ""); !lease.empty()) {
    std::vector<std::string> parts = absl::StrSplit(lease, '/');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return Fail("--leader-lease: NAMESPACE/NAME of the Lease");
    }
    absl::StatusOr<KubeClient*> client = kube_client("--leader-lease");
    if (!client.ok()) return Fail(std::string(client.status().message()));
    LeaderElector::Options election;
    election.client = *client;
    election.ns = parts[0];
    election.name = parts[1];
    // The pod's name: unique among replicas, and what an operator sees in the Lease.
    const char* pod = std::getenv("POD_NAME");
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    election.identity = get("pod-name", pod != nullptr && *pod ? pod : host);
    election.registry = &tandem::metrics::Registry::Default();
    absl::StatusOr<std::unique_ptr<LeaderElector>> made = LeaderElector::Create(election);
    if (!made.ok())
      return Fail("--leader-lease: " + std::string(made.status().message()));
    elector = *std::move(made);
    elector->Start();
  } else if (flags.Has("pod-name")) {
    return Fail("--pod-name names this replica in --leader-lease: give that too");
  }
  std::unique_ptr<TrustRootPublisher> trust_roots;
  if (std::string name = get("trust-root-configmap", ""); !name.empty()) {
    absl::StatusOr<KubeClient*> client = kube_client("--trust-root-configmap");
    if (!client.ok()) return Fail(std::string(client.status().message()));
    TrustRootPublisher::Options publish;
    publish.client = *client;
    publish.bundle = [core = &(*server)->core()] { return core->trust_bundle_pem(); };
    publish.configmap_name = name;
    publish.namespace_selector = get("trust-root-namespaces", publish.namespace_selector);
    // With replicas, only the Lease's holder writes: two writers of one object would
    // fight over it on every edit.
    if (LeaderElector* e = elector.get())
      publish.may_write = [e] { return e->is_leader(); };
    publish.registry = &tandem::metrics::Registry::Default();
    absl::StatusOr<std::unique_ptr<TrustRootPublisher>> made =
        TrustRootPublisher::Create(publish);
    if (!made.ok())
      return Fail("--trust-root-configmap: " + std::string(made.status().message()));
    trust_roots = *std::move(made);
    trust_roots->Start();
  } else if (flags.Has("trust-root-namespaces")) {
    return Fail("--trust-root-namespaces needs --trust-root-configmap");
  }
  std::unique_ptr<RevocationAdmin> admin;
  if (std::string address = get("admin", "127.0.0.1:15010");
      (revocations || policy) && !address.empty()) {
    absl::StatusOr<std::unique_ptr<RevocationAdmin>> created =
        RevocationAdmin::Create({address, revocations.get(), policy.get()});
    if (!created.ok()) return Fail("--admin: " + std::string(created.status().message()));
    admin = *std::move(created);
    // `tandemctl proxy-status` and `tandemctl check` read these two.
    if (const tandem::controlplane::PolicyServer* streams = (*server)->policy_server()) {
      admin->Handle("/policy-streams", [streams](const tandem::http::HttpRequest&) {
        return tandem::http::HttpResponse{200, "application/json",
                                          streams->StreamsJson()};
      });
    }
    CaServer* ca = server->get();
    admin->Handle("/trust-bundle", [ca](const tandem::http::HttpRequest&) {
      return tandem::http::HttpResponse{200, "application/x-pem-file",
                                        ca->core().trust_bundle_pem()};
    });
    if (absl::Status s = admin->Start(); !s.ok()) return Fail(std::string(s.message()));
    tandem::log::Listening("ca", "admin", address, admin->port());
    tandem::log::Info("ca", "admin serving",
                      {{"address", address}, {"port", admin->port()}});
  }
  const char* mode =
      !options.token_review.api_server.empty() ? "TokenReview"
      : !options.token_public_key_pem.empty() || !options.token_jwks_json.empty()
          ? "JWT public keys"
          : "none (certificate renewals only)";
  tandem::log::Info("ca", "serving IstioCertificateService",
                    {{"port", (*server)->port()},
                     {"trust_domain", options.core.trust_domain},
                     {"token_authority", mode}});
  int sig;
  sigwait(&signals, &sig);
  tandem::log::Info("ca", "shutting down");
  if (revocation_informer) revocation_informer->Stop();
  if (policy_informer) policy_informer->Stop();
  if (admin) admin->Stop();
  if (trust_roots) trust_roots->Stop();
  // Last of the writers: releasing the Lease lets another replica lead at once.
  if (elector) elector->Stop();
  if (ca_bundle) ca_bundle->Stop();
  if (injector) injector->Stop();
  if (metrics) metrics->Stop();
  if (health) health->Stop();
  (*server)->Stop();
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
