#ifndef TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_
#define TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/renewal_policy.h"
#include "common/http/http_server.h"
#include "controlplane/ca/ca_core.h"
#include "controlplane/ca/serving_certificate_renewer.h"

namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// The sidecar injector's HTTPS endpoint inside tandem-ca (as istiod serves /inject
// from the process that holds its CA): the Kubernetes API server POSTs AdmissionReview
// v1 to /inject. Its serving certificate comes from tandem-ca's own CA (CaCore), with a
// key made in memory and never written to disk; a ServingCertificateRenewer re-issues it
// at half its lifetime and when the CA's root changes (RenewNow) and swaps it into the
// running server, so the webhook never restarts and never serves an expired
// certificate.
//
// Threading: Create/Start/Stop/destructor on the owning (main) thread; the HTTP
// server's thread runs `inject`; the renewer's thread re-issues the certificate;
// port(), serving_serial() and RenewNow() from any thread.
class InjectorEndpoint {
 public:
  struct Options {
    std::string listen_address = "0.0.0.0:15017";  // Istio's webhook port
    // Names the API server checks: <service>.<namespace>.svc (what it dials for a
    // service reference) and the cluster-domain form.
    std::vector<std::string> dns_names = {
        "tandem-injector.tandem-system.svc",
        "tandem-injector.tandem-system.svc.cluster.local"};
    absl::Duration certificate_ttl = absl::Hours(24);
    agent::RenewalPolicy renewal;
    // AdmissionReview of a large pod spec: well over the 64 KiB admin default.
    size_t max_body_bytes = 4 << 20;
    absl::Duration read_timeout = absl::Seconds(5);
    // Counts requests (tandem_http_*{server="injector"}) and, labelled by result,
    // tandem_injector_certificate_renewals_total; sets
    // tandem_injector_certificate_expiry_timestamp_seconds. Must outlive the endpoint.
    metrics::Registry* registry = nullptr;
  };

  // Issues the first certificate and binds. `inject` answers POST /inject (the
  // injection library's function, wired in main); InvalidArgument when it is empty.
  // `core` must outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<InjectorEndpoint>> Create(
      Options options, const CaCore* core, http::HttpServer::Handler inject);
  ~InjectorEndpoint();  // Stop()s

  absl::Status Start();
  void Stop();
  uint16_t port() const { return server_->port(); }
  // The serial (hex) of the certificate new connections get.
  std::string serving_serial() const { return renewer_->current_serial(); }
  // Re-issues the certificate now: the CA signs with a new root.
  void RenewNow() { renewer_->RenewNow(); }

 private:
  InjectorEndpoint(std::unique_ptr<ServingCertificateRenewer> renewer,
                   std::unique_ptr<http::HttpServer> server);

  std::unique_ptr<ServingCertificateRenewer> renewer_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_
