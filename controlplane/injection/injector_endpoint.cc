#include "controlplane/injection/injector_endpoint.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace tandem::controlplane {

absl::StatusOr<std::unique_ptr<InjectorEndpoint>> InjectorEndpoint::Create(
    Options options, const CaCore* core, http::HttpServer::Handler inject) {
  if (!inject) {
    return absl::InvalidArgumentError("the injector endpoint needs an inject function");
  }
  if (options.dns_names.empty()) {
    return absl::InvalidArgumentError("injector: at least one DNS name is required");
  }
  if (options.certificate_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("injector: the certificate TTL must be positive");
  }
  const absl::Time issued_at = absl::Now();
  absl::StatusOr<ServingCertificate> first =
      core->IssueServing(options.dns_names, options.certificate_ttl, issued_at);
  if (!first.ok()) {
    return absl::Status(first.status().code(),
                        absl::StrCat("injector certificate: ", first.status().message()));
  }
  http::HttpServer::Options http;
  if (absl::Status s = http::SetListenAddress(options.listen_address, &http); !s.ok()) {
    return s;
  }
  http.name = "injector";
  http.registry = options.registry;
  http.max_body_bytes = options.max_body_bytes;
  http.read_timeout = options.read_timeout;
  http.tls = http::TlsCredentials{first->chain_pem, first->key_pem};
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Create(std::move(http));
  if (!server.ok()) return server.status();
  (*server)->Handle("/inject", std::move(inject));
  return std::unique_ptr<InjectorEndpoint>(new InjectorEndpoint(
      std::move(options), core, *std::move(server), *std::move(first), issued_at));
}

InjectorEndpoint::InjectorEndpoint(Options options, const CaCore* core,
                                   std::unique_ptr<http::HttpServer> server,
                                   ServingCertificate first, absl::Time issued_at)
    : options_(std::move(options)), core_(core), server_(std::move(server)) {
  issued_at_ = issued_at;
  not_after_ = first.not_after;
  serial_ = first.serial_hex;
  if (options_.registry != nullptr) {
    auto renewals = [&](const char* result) {
      return &options_.registry->GetCounter(
          "tandem_injector_certificate_renewals_total",
          "Injector serving certificate re-issues, by result.", {{"result", result}});
    };
    renewed_ = renewals("ok");
    renew_failed_ = renewals("error");
    expiry_ = &options_.registry->GetGauge(
        "tandem_injector_certificate_expiry_timestamp_seconds",
        "When the injector's serving certificate expires (Unix seconds).");
    expiry_->Set(absl::ToDoubleSeconds(first.not_after - absl::UnixEpoch()));
  }
}

InjectorEndpoint::~InjectorEndpoint() { Stop(); }

absl::Status InjectorEndpoint::Start() {
  if (absl::Status s = server_->Start(); !s.ok()) return s;
  renewer_ = std::thread([this] { RenewLoop(); });
  return absl::OkStatus();
}

void InjectorEndpoint::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.Signal();
  }
  if (renewer_.joinable()) renewer_.join();
  server_->Stop();
}

std::string InjectorEndpoint::serving_serial() const {
  absl::MutexLock lock(&mu_);
  return serial_;
}

void InjectorEndpoint::RenewLoop() {
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
    while (!stopping_ && absl::Now() < next) stop_cv_.WaitWithDeadline(&mu_, next);
    if (stopping_) return;
    // Issuing takes milliseconds: Stop() and serving_serial() must not wait for it.
    mu_.Unlock();
    const absl::Time issued_at = absl::Now();
    absl::StatusOr<ServingCertificate> fresh =
        core_->IssueServing(options_.dns_names, options_.certificate_ttl, issued_at);
    absl::Status swapped = fresh.ok() ? server_->SetTlsCredentials(http::TlsCredentials{
                                            fresh->chain_pem, fresh->key_pem})
                                      : fresh.status();
    mu_.Lock();
    if (!swapped.ok()) {
      ++failures;
      if (renew_failed_ != nullptr) renew_failed_->Inc();
      log::Warn("ca", "injector certificate renewal failed; the current one stays",
                {{"error", std::string(swapped.message())}, {"failures", failures}});
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
    log::Info("ca", "injector certificate renewed",
              {{"serial", serial_},
               {"not_after",
                absl::FormatTime(absl::RFC3339_sec, not_after_, absl::UTCTimeZone())}});
  }
}

}  // namespace tandem::controlplane
