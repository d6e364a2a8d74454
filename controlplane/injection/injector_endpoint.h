#ifndef TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_
#define TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/renewal_policy.h"
#include "common/http/http_server.h"
#include "controlplane/ca/ca_core.h"

namespace tandem::metrics {
class Counter;
class Gauge;
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// The sidecar injector's HTTPS endpoint inside tandem-ca (as istiod serves /inject
// from the process that holds its CA): the Kubernetes API server POSTs AdmissionReview
// v1 to /inject. Its serving certificate comes from tandem-ca's own CA (CaCore), with a
// key made in memory and never written to disk; it is re-issued at half its lifetime
// (the agent's renewal policy, with jitter and backoff on failure) and swapped into the
// running server, so the webhook never restarts and never serves an expired
// certificate.
//
// Threading: Create/Start/Stop/destructor on the owning (main) thread; the HTTP
// server's thread runs `inject`; a renewal thread re-issues the certificate; port() and
// serving_serial() from any thread.
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
  std::string serving_serial() const;

 private:
  InjectorEndpoint(Options options, const CaCore* core,
                   std::unique_ptr<http::HttpServer> server, ServingCertificate first,
                   absl::Time issued_at);
  void RenewLoop();

  const Options options_;
  const CaCore* const core_;
  std::unique_ptr<http::HttpServer> server_;
  metrics::Counter* renewed_ = nullptr;  // null without a registry
  metrics::Counter* renew_failed_ = nullptr;
  metrics::Gauge* expiry_ = nullptr;
  std::thread renewer_;

  mutable absl::Mutex mu_;
  absl::CondVar stop_cv_;  // signalled by Stop()
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time issued_at_ ABSL_GUARDED_BY(mu_);
  absl::Time not_after_ ABSL_GUARDED_BY(mu_);
  std::string serial_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_INJECTION_INJECTOR_ENDPOINT_H_
