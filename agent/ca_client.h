#ifndef TANDEM_AGENT_CA_CLIENT_H_
#define TANDEM_AGENT_CA_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::agent {

struct CaClientOptions {
  std::string address = "tandem-ca.tandem-system.svc:15012";
  // PEM roots that verify the CA's serving certificate.
  std::string root_pem;
  // Name to verify in the CA's certificate, when `address` is an IP.
  std::string server_name = "tandem-ca";
  absl::Duration timeout = absl::Seconds(10);
  // When set, re-read before every call and used instead of root_pem (the agent's
  // --ca-root: in Kubernetes the tandem-ca-root ConfigMap, which tandem-ca rewrites
  // during a root rotation). An unreadable or empty file keeps the last roots.
  std::string root_file;
  // More roots that verify the CA, re-read before every call (the agent's
  // --extra-roots): during a root rotation tandem-ca's own certificate moves to the
  // next root, which the operator adds here first (docs/controlplane.md).
  std::string extra_roots_file;
};

class CaChannel;

// Calls istio.v1.auth.IstioCertificateService/CreateCertificate over gRPC+TLS: works
// against tandem-ca, istiod or cert-manager istio-csr alike. Thread-safe. The header
// names no gRPC type.
class CaClient {
 public:
  static absl::StatusOr<std::unique_ptr<CaClient>> Create(CaClientOptions options);
  ~CaClient();
  // Its connection to the CA, for the policy relay to share (PolicyRelayOptions::
  // channel): one TLS connection per agent instead of two, so a CA restart costs it
  // one handshake, and a renewal rides the connection the relay's stream has already
  // re-opened.
  std::shared_ptr<CaChannel> channel() const;
  // Sends `csr_pem` with `authorization: Bearer <token>`. Returns the PEM chain, leaf
  // first. gRPC errors keep their code. While the channel is (re)connecting the call
  // waits for it, until `timeout` or `deadline` if sooner, instead of failing at once:
  // a CA that is back is then used as soon as the channel reaches it, whereas a
  // fail-fast call made in the second after its return failed, and the failure doubled
  // the agent's next wait (found by the soak). Returns CANCELLED after Shutdown().
  absl::StatusOr<std::vector<std::string>> CreateCertificate(
      const std::string& csr_pem, const std::string& token, int64_t validity_seconds,
      absl::Time deadline = absl::InfiniteFuture());
  // Any thread: cancels the call in flight and fails later ones at once, so a stopping
  // agent does not wait out a call that waits for the CA.
  void Shutdown();

  struct Impl;

 private:
  explicit CaClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_CA_CLIENT_H_
