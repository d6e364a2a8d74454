#ifndef TANDEM_CONTROLPLANE_SERVER_CA_SERVER_H_
#define TANDEM_CONTROLPLANE_SERVER_CA_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controlplane/auth/token_review_authenticator.h"
#include "controlplane/ca/ca_core.h"
#include "controlplane/server/policy_server.h"

namespace tandem::controlplane {

struct CaServerOptions {
  CaCoreOptions core;
  std::string listen_address = "0.0.0.0:15012";  // port 0 picks one
  // Standalone mode: PEM public key(s) and/or a JWKS document that verify
  // service-account tokens (ES256, RS256). Neither, and no TokenReview: only renewals
  // by client certificate are accepted.
  std::string token_public_key_pem;
  std::string token_jwks_json;
  // Kubernetes mode, when token_review.api_server is set (exclusive with the above):
  // every token is checked by the API server's TokenReview. Its audiences are
  // replaced by {audience}.
  TokenReviewAuthenticator::Options token_review;
  std::string audience = "istio-ca";
  std::string issuer;  // standalone mode only; empty: any
  // Mesh policy (optional; both outlive the server). When either is set the server
  // also serves tandem.policy.v1.MeshPolicyService. A revocation list also refuses
  // certificates to revoked identities and renewals by revoked certificates.
  PolicyWatcher* policy = nullptr;
  RevocationStore* revocations = nullptr;
  absl::Duration policy_poll_interval = absl::Seconds(1);
  // How often the CA's key, certificate and extra roots file are re-read (root
  // rotation without a restart, CaCore::Reload); zero: never.
  absl::Duration root_reload_interval = absl::Seconds(5);
  // Lifetime of the gRPC port's own certificate (core.server_dns_names/server_ips),
  // clamped to the CA's; re-issued at half of it and after every accepted reload.
  absl::Duration serving_certificate_ttl = absl::Hours(24);
};

// tandem-ca's gRPC server: istio.v1.auth.IstioCertificateService/CreateCertificate over
// TLS, and the mesh policy stream (PolicyServer) when configured. Callers authenticate
// with `authorization: Bearer <service-account JWT>` or with their current client
// certificate (CallerAuthenticator). The port's own certificate is issued from the CA
// and swapped in without a restart (ServingCertificateRenewer,
// ReloadableServerCredentials): at half its lifetime, and at once when a reload brings
// a new signing root, so clients that trust only the new bundle can connect (new
// handshakes get it within about a second); open connections keep theirs. Start/Stop
// from the main thread. Both services are on gRPC's callback API: requests run on
// gRPC's threads, except CreateCertificate in Kubernetes mode, whose TokenReview round
// trip runs on a pool of 16 threads of the server's own. A reload thread re-reads the
// CA's files every root_reload_interval, and a renewal thread re-issues the
// certificate. gRPC code: the header names no BoringSSL type.
class CaServer {
 public:
  static absl::StatusOr<std::unique_ptr<CaServer>> Create(CaServerOptions options);
  ~CaServer();
  absl::Status Start();
  void Stop();
  int port() const;
  const CaCore& core() const;
  // The serial (hex) of the certificate new gRPC connections get. Any thread.
  std::string serving_serial() const;
  // Calls `listener` on the reload thread after every accepted reload (the injector
  // re-issues its certificate then). Any thread; `listener` must stay callable until
  // Stop().
  void OnRootReload(std::function<void()> listener);
  // Null unless options.policy or options.revocations was set.
  const PolicyServer* policy_server() const;
  // Prometheus text: requests by result, refusals by reason, certificates issued,
  // latency, root reloads by result, and the policy server's metrics. Any thread.
  std::string RenderMetrics() const;

  struct Impl;

 private:
  explicit CaServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_CA_SERVER_H_
