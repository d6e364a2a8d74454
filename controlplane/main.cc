// tandem-ca: the control plane's certificate authority. Flags live here only.
//
//   tandem-ca serve --root-dir=DIR [--root-dir-mode=owner-only|secret-volume]
//                   [--listen=0.0.0.0:15012] [--metrics=0.0.0.0:15014]
//                   [--token-public-key=FILE] [--token-jwks=FILE]       (standalone)
//                   [--token-review [--kube-api-server=HOST:PORT --kube-ca-file=FILE
//                    --kube-token-file=FILE --kube-server-name=NAME]]    (Kubernetes)
//                   [--audience=istio-ca] [--issuer=ISS]
//                   [--trust-domain=cluster.local] [--default-ttl=1h] [--max-ttl=24h]
//                   [--extra-roots=FILE] [--dns-names=a,b] [--ip-addresses=127.0.0.1]
//                   [--policy-file=FILE [--policy-poll=1s]]       (mesh policy stream)
//                   [--state-dir=DIR [--admin=127.0.0.1:15010]]   (revocations)
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
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "controlplane/admin_client.h"
#include "controlplane/ca_server.h"
#include "controlplane/jwt.h"
#include "controlplane/policy_watcher.h"
#include "controlplane/revocation_admin.h"
#include "controlplane/revocation_store.h"
#include "controlplane/signing_key.h"
#include "controlplane/token_review_authenticator.h"

namespace {

using tandem::controlplane::CaServer;
using tandem::controlplane::CaServerOptions;

std::map<std::string, std::string> ParseFlags(int argc, char** argv, int first) {
  std::map<std::string, std::string> flags;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      flags["__positional"] = arg;
      continue;
    }
    size_t eq = arg.find('=');
    flags[arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
        eq == std::string::npos ? "true" : arg.substr(eq + 1);
  }
  return flags;
}

bool ReadFile(const std::string& path, std::string* out) {
  absl::StatusOr<std::string> text = tandem::ReadFileToString(path);
  if (!text.ok()) return false;
  *out = *std::move(text);
  return true;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "tandem-ca: %s\n", message.c_str());
  return 2;
}

bool Duration(const std::map<std::string, std::string>& flags, const std::string& name,
              absl::Duration* out) {
  auto it = flags.find(name);
  if (it == flags.end()) return true;
  return absl::ParseDuration(it->second, out) && *out > absl::ZeroDuration();
}

int Serve(const std::map<std::string, std::string>& flags) {
  static const char* kKnown[] = {"root-dir",
                                 "root-dir-mode",
                                 "listen",
                                 "metrics",
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
                                 "dns-names",
                                 "ip-addresses",
                                 "policy-file",
                                 "policy-poll",
                                 "state-dir",
                                 "admin"};
  for (const auto& [name, value] : flags) {
    bool known = false;
    for (const char* k : kKnown) known |= name == k;
    if (!known) return Fail("unknown flag --" + name);
  }
  CaServerOptions options;
  auto get = [&](const char* name, const std::string& fallback) {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  };
  options.core.root_dir = get("root-dir", "/var/lib/tandem-ca");
  options.core.trust_domain = get("trust-domain", "cluster.local");
  if (std::string mode = get("root-dir-mode", "owner-only"); mode == "secret-volume") {
    options.core.key_permissions = tandem::controlplane::KeyPermissions::kSecretVolume;
  } else if (mode != "owner-only") {
    return Fail("--root-dir-mode: owner-only or secret-volume");
  }
  options.listen_address = get("listen", "0.0.0.0:15012");
  options.audience = get("audience", "istio-ca");
  options.issuer = get("issuer", "");
  if (!Duration(flags, "default-ttl", &options.core.default_ttl)) {
    return Fail("--default-ttl: not a positive duration (e.g. 1h, 30s)");
  }
  if (!Duration(flags, "max-ttl", &options.core.max_ttl)) {
    return Fail("--max-ttl: not a positive duration");
  }
  if (flags.count("dns-names")) {
    options.core.server_dns_names =
        absl::StrSplit(get("dns-names", ""), ',', absl::SkipEmpty());
  }
  if (flags.count("ip-addresses")) {
    options.core.server_ips =
        absl::StrSplit(get("ip-addresses", ""), ',', absl::SkipEmpty());
  }
  if (flags.count("token-public-key") &&
      !ReadFile(get("token-public-key", ""), &options.token_public_key_pem)) {
    return Fail("--token-public-key: cannot read " + get("token-public-key", ""));
  }
  if (flags.count("token-jwks") &&
      !ReadFile(get("token-jwks", ""), &options.token_jwks_json)) {
    return Fail("--token-jwks: cannot read " + get("token-jwks", ""));
  }
  if (flags.count("token-review")) {
    using tandem::controlplane::TokenReviewAuthenticator;
    TokenReviewAuthenticator::Options review;
    if (!flags.count("kube-api-server")) {
      // In a pod: the API server, its CA and our token come from the environment.
      absl::StatusOr<TokenReviewAuthenticator::Options> in_cluster =
          TokenReviewAuthenticator::InClusterOptions();
      if (!in_cluster.ok()) {
        return Fail("--token-review: " + std::string(in_cluster.status().message()) +
                    " (outside a pod give --kube-api-server, --kube-ca-file and "
                    "--kube-token-file)");
      }
      review = *std::move(in_cluster);
    } else {
      review.api_server = get("kube-api-server", "");
      review.credential_token_path =
          get("kube-token-file", TokenReviewAuthenticator::kInClusterTokenPath);
      std::string ca_file =
          get("kube-ca-file", TokenReviewAuthenticator::kInClusterCaPath);
      if (!ReadFile(ca_file, &review.ca_pem)) {
        return Fail("--kube-ca-file: cannot read " + ca_file);
      }
    }
    if (flags.count("kube-token-file")) {
      review.credential_token_path = get("kube-token-file", "");
    }
    if (flags.count("kube-server-name")) review.server_name = get("kube-server-name", "");
    options.token_review = std::move(review);
  }
  if (flags.count("extra-roots") &&
      !ReadFile(get("extra-roots", ""), &options.core.extra_roots_pem)) {
    return Fail("--extra-roots: cannot read " + get("extra-roots", ""));
  }
  using tandem::controlplane::PolicyWatcher;
  using tandem::controlplane::RevocationAdmin;
  using tandem::controlplane::RevocationStore;
  std::unique_ptr<PolicyWatcher> policy;
  if (flags.count("policy-file")) {
    absl::StatusOr<std::unique_ptr<PolicyWatcher>> watcher =
        PolicyWatcher::Create(get("policy-file", ""));
    if (!watcher.ok())
      return Fail("--policy-file: " + std::string(watcher.status().message()));
    policy = *std::move(watcher);
    options.policy = policy.get();
  }
  if (!Duration(flags, "policy-poll", &options.policy_poll_interval)) {
    return Fail("--policy-poll: not a positive duration (e.g. 1s, 500ms)");
  }
  std::unique_ptr<RevocationStore> revocations;
  if (flags.count("state-dir")) {
    absl::StatusOr<std::unique_ptr<RevocationStore>> store =
        RevocationStore::Open({get("state-dir", ""), options.core.max_ttl}, absl::Now());
    if (!store.ok()) return Fail("--state-dir: " + std::string(store.status().message()));
    revocations = *std::move(store);
    options.revocations = revocations.get();
  } else if (flags.count("admin")) {
    return Fail("--admin serves revocations: give --state-dir=DIR too");
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<CaServer>> server = CaServer::Create(options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  if (absl::Status s = (*server)->Start(); !s.ok()) return Fail(std::string(s.message()));
  std::unique_ptr<tandem::HttpServer> metrics;
  if (std::string address = get("metrics", "0.0.0.0:15014"); !address.empty()) {
    absl::StatusOr<std::unique_ptr<tandem::HttpServer>> http =
        tandem::HttpServer::Create(address);
    if (!http.ok()) return Fail(std::string(http.status().message()));
    metrics = *std::move(http);
    CaServer* s = server->get();
    metrics->Handle("/metrics", [s](const tandem::HttpRequest&) {
      return tandem::HttpResponse{200, s->RenderMetrics(),
                                  "text/plain; version=0.0.4; charset=utf-8"};
    });
    metrics->Handle("/healthz/ready", [](const tandem::HttpRequest&) {
      return tandem::HttpResponse{200, "ready\n"};
    });
    metrics->Handle("/trust-bundle", [s](const tandem::HttpRequest&) {
      return tandem::HttpResponse{200, s->core().trust_bundle_pem(),
                                  "application/x-pem-file"};
    });
    metrics->Start();
  }
  std::unique_ptr<RevocationAdmin> admin;
  if (std::string address = get("admin", "127.0.0.1:15010");
      revocations && !address.empty()) {
    absl::StatusOr<std::unique_ptr<RevocationAdmin>> created =
        RevocationAdmin::Create({address, revocations.get(), policy.get()});
    if (!created.ok()) return Fail("--admin: " + std::string(created.status().message()));
    admin = *std::move(created);
    if (const tandem::controlplane::PolicyServer* streams = (*server)->policy_server()) {
      admin->Handle("/policy-streams", [streams](const tandem::http::HttpRequest&) {
        return tandem::http::HttpResponse{200, "application/json",
                                          streams->StreamsJson()};
      });
    }
    if (absl::Status s = admin->Start(); !s.ok()) return Fail(std::string(s.message()));
    std::fprintf(stderr, "tandem-ca: revocation admin on %s (port %d)\n", address.c_str(),
                 admin->port());
  }
  const char* mode =
      !options.token_review.api_server.empty() ? "TokenReview"
      : !options.token_public_key_pem.empty() || !options.token_jwks_json.empty()
          ? "JWT public keys"
          : "none (certificate renewals only)";
  std::fprintf(stderr,
               "tandem-ca: serving IstioCertificateService on port %d (trust domain %s, "
               "token authority: %s)\n",
               (*server)->port(), options.core.trust_domain.c_str(), mode);
  int sig;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "tandem-ca: shutting down\n");
  if (admin) admin->Stop();
  if (metrics) metrics->Stop();
  (*server)->Stop();
  return 0;
}

// `tandem-ca revoke` / `tandem-ca revocations`: one request to the admin endpoint.
int Revoke(const std::string& command, const std::map<std::string, std::string>& flags) {
  using tandem::controlplane::AdminClient;
  auto get = [&](const char* name) {
    auto it = flags.find(name);
    return it == flags.end() ? std::string() : it->second;
  };
  std::string admin = get("admin");
  if (admin.empty())
    return Fail(command + ": --admin=ADDR is required (e.g. 127.0.0.1:15010)");
  absl::StatusOr<AdminClient::Reply> reply;
  if (command == "revocations") {
    reply = AdminClient::Call(admin, "GET", "/revocations", "");
  } else {
    const int targets =
        flags.count("cert") + flags.count("serial") + flags.count("spiffe-id");
    if (targets != 1) {
      return Fail(
          "revoke: give one of --cert=FILE, --serial=HEX --not-after=RFC3339, "
          "--spiffe-id=ID");
    }
    std::string body;
    if (flags.count("cert")) {
      std::string pem;
      if (!ReadFile(get("cert"), &pem)) return Fail("revoke: cannot read --cert");
      absl::StatusOr<std::string> from_cert =
          AdminClient::RevokeCertificateBody(pem, get("reason"));
      if (!from_cert.ok()) {
        return Fail("revoke: --cert: " + std::string(from_cert.status().message()));
      }
      body = *from_cert;
    } else if (flags.count("serial")) {
      if (!flags.count("not-after")) return Fail("revoke: --serial needs --not-after");
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
  signal(SIGPIPE, SIG_IGN);
  std::string command = argc > 1 ? argv[1] : "";
  std::map<std::string, std::string> flags = ParseFlags(argc, argv, 2);
  auto get = [&](const char* name, const std::string& fallback) {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
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
  if (command == "revoke" || command == "revocations") return Revoke(command, flags);
  std::fprintf(stderr,
               "usage: tandem-ca serve|gen-signing-key|public-key|mint-token|revoke|"
               "revocations [--flags]\n"
               "(see controlplane/main.cc or docs/controlplane.md)\n");
  return 2;
}
