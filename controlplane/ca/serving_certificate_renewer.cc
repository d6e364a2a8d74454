#include "controlplane/ca/serving_certificate_renewer.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace tandem::controlplane {

absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>>
ServingCertificateRenewer::Create(Options options, const CaCore* core) {
  if (options.dns_names.empty() && options.ip_addresses.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.name, " certificate: at least one DNS name or IP is required"));
  }
  if (options.ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.name, " certificate: the TTL must be positive"));
  }
  const absl::Time issued_at = absl::Now();
  absl::StatusOr<ServingCertificate> first =
      core->IssueServing(options.dns_names, options.ip_addresses, options.ttl, issued_at);
  if (!first.ok()) {
    return absl::Status(
        first.status().code(),
        absl::StrCat(options.name, " certificate: ", first.status().message()));
  }
  return std::unique_ptr<ServingCertificateRenewer>(new ServingCertificateRenewer(
      std::move(options), core, *std::move(first), issued_at));
}

ServingCertificateRenewer::ServingCertificateRenewer(Options options, const CaCore* core,
                                                     ServingCertificate first,
                                                     absl::Time issued_at)
    : options_(std::move(options)), core_(core), first_(std::move(first)) {
  issued_at_ = issued_at;
  not_after_ = first_.not_after;
  serial_ = first_.serial_hex;
  if (options_.registry != nullptr) {
    auto renewals = [&](const char* result) {
      return &options_.registry->GetCounter(
          options_.metric_prefix + "_renewals_total",
          absl::StrCat("Re-issues of the ", options_.name,
                       " serving certificate, by result."),
          {{"result", result}});
    };
    renewed_ = renewals("ok");
    renew_failed_ = renewals("error");
    expiry_ = &options_.registry->GetGauge(
        options_.metric_prefix + "_expiry_timestamp_seconds",
        absl::StrCat("When the ", options_.name,
                     " serving certificate expires (Unix seconds)."));
    expiry_->Set(absl::ToDoubleSeconds(first_.not_after - absl::UnixEpoch()));
  }
}

ServingCertificateRenewer::~ServingCertificateRenewer() { Stop(); }

void ServingCertificateRenewer::Start(Install install) {
  renewer_ = std::thread([this, install = std::move(install)] { RenewLoop(install); });
}

void ServingCertificateRenewer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    wake_.Signal();
  }
  if (renewer_.joinable()) renewer_.join();
}

void ServingCertificateRenewer::RenewNow() {
  absl::MutexLock lock(&mu_);
  renew_now_ = true;
  wake_.Signal();
}

std::string ServingCertificateRenewer::current_serial() const {
  absl::MutexLock lock(&mu_);
  return serial_;
}

absl::Time ServingCertificateRenewer::current_not_after() const {
  absl::MutexLock lock(&mu_);
  return not_after_;
}

void ServingCertificateRenewer::RenewLoop(const Install& install) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int failures = 0;
  absl::MutexLock lock(&mu_);
  while (true) {
    // From the issue time, not not_before: the CA back-dates not_before by a minute
    // for clock skew, which would put "half the lifetime" of a short certificate in the
    // past.
    absl::Time next = agent::NextRenewal(options_.renewal, issued_at_, not_after_,
                                         absl::Now(), failures, uniform(rng));
    // A CondVar, not an absl::Condition: Abseil may evaluate a Condition in the
    // unlocking thread, which TSan cannot order with this stack frame (Debian's Abseil
    // is uninstrumented).
    while (!stopping_ && !renew_now_ && absl::Now() < next) {
      wake_.WaitWithDeadline(&mu_, next);
    }
    if (stopping_) return;
    const bool root_changed = renew_now_;
    renew_now_ = false;
    // Issuing takes milliseconds: Stop() and the getters must not wait for it.
    mu_.Unlock();
    const absl::Time issued_at = absl::Now();
    absl::StatusOr<ServingCertificate> fresh = core_->IssueServing(
        options_.dns_names, options_.ip_addresses, options_.ttl, issued_at);
    absl::Status installed = fresh.ok() ? install(*fresh) : fresh.status();
    mu_.Lock();
    if (!installed.ok()) {
      ++failures;
      if (renew_failed_ != nullptr) renew_failed_->Inc();
      log::Warn("ca", "serving certificate renewal failed; the current one stays",
                {{"server", options_.name},
                 {"error", std::string(installed.message())},
                 {"failures", failures}});
      continue;
    }
    failures = 0;
    issued_at_ = issued_at;
    not_after_ = fresh->not_after;
    serial_ = fresh->serial_hex;
    if (renewed_ != nullptr) renewed_->Inc();
    if (expiry_ != nullptr) {
      expiry_->Set(absl::ToDoubleSeconds(fresh->not_after - absl::UnixEpoch()));
    }
    log::Info("ca",
              root_changed ? "serving certificate re-issued from the new root"
                           : "serving certificate renewed",
              {{"server", options_.name},
               {"serial", serial_},
               {"not_after",
                absl::FormatTime(absl::RFC3339_sec, not_after_, absl::UTCTimeZone())}});
  }
}

}  // namespace tandem::controlplane
