#ifndef TANDEM_CONTROLPLANE_CA_SERVING_CERTIFICATE_RENEWER_H_
#define TANDEM_CONTROLPLANE_CA_SERVING_CERTIFICATE_RENEWER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/renewal_policy.h"
#include "controlplane/ca/ca_core.h"

namespace tandem::metrics {
class Counter;
class Gauge;
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// Keeps one of tandem-ca's own serving certificates (its gRPC port, the injector's
// webhook) fresh: issues it from CaCore with a key made in memory, re-issues it by the
// agent's renewal policy (half its lifetime, with jitter; backoff on failure, the
// current certificate staying) and at once on RenewNow() (the CA's signing root
// changed), and hands each new one to `install`, which swaps it into the running
// server. Nothing restarts: open connections keep the certificate they started with.
//
// Threading: Create/Start/Stop/destructor on the owning thread; a renewal thread
// issues and calls `install`; RenewNow(), current_serial() and current_not_after()
// from any thread.
class ServingCertificateRenewer {
 public:
  struct Options {
    std::string name;  // for logs: "grpc", "injector"
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses;
    absl::Duration ttl = absl::Hours(24);
    agent::RenewalPolicy renewal;
    // <metric_prefix>_renewals_total{result=ok|error} and
    // <metric_prefix>_expiry_timestamp_seconds; no metrics when registry is null. The
    // registry must outlive the renewer.
    metrics::Registry* registry = nullptr;
    std::string metric_prefix;
  };
  // Swaps a fresh certificate into the server; an error keeps the current one.
  using Install = std::function<absl::Status(const ServingCertificate&)>;

  // Issues the first certificate (first()), which the owner builds its server with.
  // `core` must outlive the renewer. kInvalidArgument for a bad name or TTL.
  static absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>> Create(
      Options options, const CaCore* core);
  ~ServingCertificateRenewer();  // Stop()s

  const ServingCertificate& first() const { return first_; }
  // Starts the renewal thread, which calls `install` with each re-issued certificate.
  void Start(Install install);
  void Stop();
  // Re-issues now rather than at the scheduled time: the CA signs with a new root.
  void RenewNow();
  std::string current_serial() const;
  absl::Time current_not_after() const;

 private:
  ServingCertificateRenewer(Options options, const CaCore* core, ServingCertificate first,
                            absl::Time issued_at);
  void RenewLoop(const Install& install);

  const Options options_;
  const CaCore* const core_;
  const ServingCertificate first_;
  metrics::Counter* renewed_ = nullptr;  // null without a registry
  metrics::Counter* renew_failed_ = nullptr;
  metrics::Gauge* expiry_ = nullptr;
  std::thread renewer_;

  mutable absl::Mutex mu_;
  absl::CondVar wake_;  // Stop() and RenewNow()
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool renew_now_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time issued_at_ ABSL_GUARDED_BY(mu_);
  absl::Time not_after_ ABSL_GUARDED_BY(mu_);
  std::string serial_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_CA_SERVING_CERTIFICATE_RENEWER_H_
