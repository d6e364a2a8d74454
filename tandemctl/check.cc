// BoringSSL side (PKI, the HTTPS client): never include gRPC headers here.
#include "tandemctl/check.h"

#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pki/trust_bundle.h"
#include "controlplane/kube/https_client.h"
#include "controlplane/revocation/admin_client.h"
#include "tandemctl/proxy_status.h"
#include "tandemctl/tls_probe.h"

namespace tandem::tandemctl {
namespace {

using controlplane::AdminClient;

constexpr char kCaLogs[] = "kubectl -n tandem-system logs deploy/tandem-ca";

CheckResult Ok(std::string name, std::string message) {
  return {std::move(name), true, std::move(message), ""};
}
CheckResult Fail(std::string name, std::string message, std::string hint) {
  return {std::move(name), false, std::move(message), std::move(hint)};
}

// Names a certificate by its subject, or for a leaf without one its SPIFFE ID.
std::string Describe(const pki::Certificate& cert) {
  std::string name = cert.Subject();
  if (absl::StatusOr<SpiffeId> id = cert.GetSpiffeId(); name.empty() && id.ok()) {
    name = id->ToString();
  }
  return absl::StrCat("\"", name, "\" (serial ", cert.SerialHex(), ")");
}

// Verifies a server's chain against the user's roots; the failure names the issuer.
absl::Status VerifyChain(const std::vector<pki::Certificate>& chain,
                         const pki::TrustBundle& roots, absl::Time now) {
  absl::StatusOr<SpiffeId> id = roots.Verify(chain, now);
  if (id.ok()) return absl::OkStatus();
  return absl::Status(id.status().code(),
                      absl::StrCat(id.status().message(), "; its issuer is \"",
                                   chain.back().Issuer(), "\""));
}

// GET `path` on the admin endpoint; the error says what to do about it.
absl::StatusOr<std::string> AdminGet(const CheckOptions& options,
                                     const std::string& path) {
  absl::StatusOr<AdminClient::Reply> reply =
      AdminClient::Call(options.admin, "GET", path, "", options.timeout);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GET ", path, " answered ", reply->status, ": ", reply->body,
        reply->status == 404 ? " (tandem-ca serves it with --policy-file or --state-dir)"
                             : ""));
  }
  return reply->body;
}

CheckResult CheckCa(const CheckOptions& options, const pki::TrustBundle* roots,
                    absl::Time now) {
  absl::StatusOr<TlsProbeResult> probe =
      ProbeTls(options.ca_address, "h2", options.timeout);
  if (!probe.ok()) {
    return Fail(
        "ca", std::string(probe.status().message()),
        absl::StrCat("is tandem-ca running and listening there (--listen)? ", kCaLogs));
  }
  if (probe->alpn != "h2") {
    return Fail("ca",
                absl::StrCat(options.ca_address, " speaks TLS but not HTTP/2 (ALPN \"",
                             probe->alpn, "\"): not tandem-ca's gRPC port"),
                "the agents' --ca-address and tandem-ca's --listen");
  }
  if (roots == nullptr) {
    return Ok("ca", absl::StrCat(options.ca_address, " serves gRPC over TLS"));
  }
  if (absl::Status s = VerifyChain(probe->chain, *roots, now); !s.ok()) {
    return Fail(
        "ca",
        absl::StrCat("the certificate ", options.ca_address, " serves, ",
                     Describe(probe->chain.front()), ", does not verify against ",
                     options.ca_root_name, ": ", s.message()),
        absl::StrCat("agents given ", options.ca_root_name,
                     " cannot reach this CA; compare it with the trust-bundle line"));
  }
  return Ok("ca", absl::StrCat(options.ca_address, " serves gRPC over TLS with ",
                               Describe(probe->chain.front()),
                               ", which verifies against ", options.ca_root_name));
}

CheckResult CheckTrustBundle(const CheckOptions& options, const pki::TrustBundle* roots) {
  absl::StatusOr<std::string> served = AdminGet(options, "/trust-bundle");
  if (!served.ok()) {
    return Fail(
        "trust-bundle",
        absl::StrCat("cannot read the CA's bundle from the admin endpoint: ",
                     served.status().message()),
        absl::StrCat("run this where tandem-ca runs (kubectl -n tandem-system exec "
                     "deploy/tandem-ca -- tandemctl check ...); tandem-ca --admin"));
  }
  absl::StatusOr<pki::TrustBundle> bundle = pki::TrustBundle::FromPem(*served);
  if (!bundle.ok()) {
    return Fail(
        "trust-bundle",
        absl::StrCat("the CA's bundle does not parse: ", bundle.status().message()),
        kCaLogs);
  }
  if (roots == nullptr) {
    return Ok("trust-bundle", absl::StrCat("the CA serves ", bundle->roots().size(),
                                           " root(s); no --ca-root to compare"));
  }
  std::set<std::string> ours, theirs;
  for (const pki::Certificate& c : roots->roots()) ours.insert(c.ToDer());
  for (const pki::Certificate& c : bundle->roots()) theirs.insert(c.ToDer());
  std::vector<std::string> missing, extra;
  for (const pki::Certificate& c : bundle->roots()) {
    if (!ours.count(c.ToDer())) missing.push_back(Describe(c));
  }
  for (const pki::Certificate& c : roots->roots()) {
    if (!theirs.count(c.ToDer())) extra.push_back(Describe(c));
  }
  if (missing.empty() && extra.empty()) {
    return Ok("trust-bundle",
              absl::StrCat(options.ca_root_name, " holds the ", bundle->roots().size(),
                           " root(s) the CA serves, and no other"));
  }
  std::string message;
  if (!missing.empty()) {
    absl::StrAppend(&message, options.ca_root_name, " lacks the CA's root(s) ",
                    absl::StrJoin(missing, ", "));
  }
  if (!extra.empty()) {
    absl::StrAppend(&message, message.empty() ? "" : "; ", options.ca_root_name,
                    " holds root(s) the CA does not serve: ", absl::StrJoin(extra, ", "));
  }
  return Fail("trust-bundle", message,
              "the tandem-ca-root ConfigMap of each namespace must equal the CA's bundle "
              "(GET /trust-bundle on the admin endpoint; docs/controlplane.md)");
}

CheckResult CheckInjector(const CheckOptions& options, const pki::TrustBundle* roots,
                          absl::Time now) {
  constexpr char kHint[] =
      "tandem-ca --injector-listen; its log names the injector's listener and "
      "certificate";
  absl::StatusOr<TlsProbeResult> probe =
      ProbeTls(options.injector_address, "http/1.1", options.timeout);
  if (!probe.ok()) return Fail("injector", std::string(probe.status().message()), kHint);
  if (roots != nullptr) {
    if (absl::Status s = VerifyChain(probe->chain, *roots, now); !s.ok()) {
      return Fail(
          "injector",
          absl::StrCat("the certificate ", options.injector_address, " serves, ",
                       Describe(probe->chain.front()), ", does not verify against ",
                       options.ca_root_name, ": ", s.message()),
          "the webhook's caBundle must verify it: kubectl get "
          "mutatingwebhookconfiguration tandem-sidecar-injector -o yaml");
    }
  }
  // An HTTP answer over a verified connection, as the API server makes it.
  controlplane::HttpsClient::Options https;
  https.address = options.injector_address;
  https.ca_pem = options.ca_root_pem;
  https.server_name = options.injector_server_name;
  https.timeout = options.timeout;
  absl::StatusOr<std::unique_ptr<controlplane::HttpsClient>> client =
      controlplane::HttpsClient::Create(https);
  if (!client.ok())
    return Fail("injector", std::string(client.status().message()), kHint);
  absl::StatusOr<controlplane::HttpsResponse> answer =
      (*client)->Send("GET", "/inject", "", "", {});
  if (!answer.ok()) {
    return Fail("injector",
                absl::StrCat("no HTTPS answer as ", options.injector_server_name, ": ",
                             answer.status().message()),
                absl::StrCat(kHint,
                             "; --injector-dns-names must hold the name the API "
                             "server dials"));
  }
  return Ok("injector", absl::StrCat(options.injector_address, " answers HTTPS as ",
                                     options.injector_server_name, " with ",
                                     Describe(probe->chain.front()),
                                     roots != nullptr ? ", which verifies against " : "",
                                     roots != nullptr ? options.ca_root_name : ""));
}

void CheckProxies(const CheckOptions& options, absl::Time now,
                  std::vector<CheckResult>* out) {
  absl::StatusOr<std::string> json = AdminGet(options, "/policy-streams");
  absl::StatusOr<std::vector<ProxyStatus>> streams =
      json.ok() ? ParseProxyStatus(*json) : json.status();
  if (!streams.ok()) {
    out->push_back(
        Fail("proxies",
             absl::StrCat("cannot read the policy streams: ", streams.status().message()),
             "tandem-ca --admin, with --policy-file or --state-dir"));
    return;
  }
  size_t failed = 0;
  for (const ProxyStatus& s : *streams) {
    std::string name = Printable(absl::StrCat("proxy ", s.node, " (", s.spiffe_id, ")"));
    const std::string logs = "the pod's tandem-agent and tandem-proxy logs";
    if (PolicyState(s) == "NACKED") {
      ++failed;
      out->push_back(Fail(name,
                          absl::StrCat("refused mesh policy version ", s.sent_version,
                                       ": ", Printable(s.last_nack_error)),
                          absl::StrCat("tandemctl proxy-status; the policy file "
                                       "(tandem-ca --policy-file); ",
                                       logs)));
    }
    if (s.cert_not_after == absl::InfinitePast()) {
      ++failed;
      out->push_back(Fail(name, "its agent reports no certificate",
                          absl::StrCat(logs,
                                       "; tandem_agent_certificate_state on the "
                                       "agent's :15019/metrics")));
    } else if (s.cert_not_after - now < options.expiry_warning) {
      ++failed;
      out->push_back(
          Fail(name,
               absl::StrCat("certificate ", Printable(s.cert_serial),
                            s.cert_not_after <= now ? " expired " : " expires ",
                            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", s.cert_not_after,
                                             absl::UTCTimeZone()),
                            " (", Until(s.cert_not_after, now), ")",
                            s.cert_not_after <= now
                                ? ""
                                : absl::StrCat(", within ", absl::FormatDuration(
                                                                options.expiry_warning))),
               absl::StrCat(logs,
                            "; tandem_agent_rotation_failures_total on the agent's "
                            ":15019/metrics; is the CA reachable from the pod?")));
    }
  }
  if (failed == 0) {
    out->push_back(
        Ok("proxies", absl::StrCat(streams->size(),
                                   " connected; none refuses its policy, no certificate "
                                   "expires within ",
                                   absl::FormatDuration(options.expiry_warning))));
  }
}

}  // namespace

std::vector<CheckResult> RunChecks(const CheckOptions& options, absl::Time now) {
  std::vector<CheckResult> out;
  std::optional<pki::TrustBundle> roots;
  if (!options.ca_root_pem.empty()) {
    absl::StatusOr<pki::TrustBundle> parsed =
        pki::TrustBundle::FromPem(options.ca_root_pem);
    if (parsed.ok()) {
      roots = *std::move(parsed);
    } else {
      out.push_back(Fail(
          "ca-root", absl::StrCat(options.ca_root_name, ": ", parsed.status().message()),
          "give the PEM roots the workloads trust (--ca-root)"));
    }
  }
  const pki::TrustBundle* trust = roots ? &*roots : nullptr;
  out.push_back(CheckCa(options, trust, now));
  out.push_back(CheckTrustBundle(options, trust));
  if (!options.injector_address.empty())
    out.push_back(CheckInjector(options, trust, now));
  CheckProxies(options, now, &out);
  return out;
}

std::string FormatCheck(const CheckResult& r) {
  if (r.ok) return absl::StrCat("ok    ", r.name, ": ", r.message);
  return absl::StrCat("FAIL  ", r.name, ": ", r.message, "; look further: ", r.hint);
}

}  // namespace tandem::tandemctl
