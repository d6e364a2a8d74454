#include "agent/agent.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/ca_reachability.h"
#include "common/credential_request.h"
#include "common/file_util.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace tandem::agent {
namespace {

constexpr CertState kAllStates[] = {CertState::kNoCertificate, CertState::kValid,
                                    CertState::kRenewing, CertState::kExpired};
constexpr RenewalFailure kAllFailures[] = {
    RenewalFailure::kKey,         RenewalFailure::kToken,
    RenewalFailure::kCa,          RenewalFailure::kBadResponse,
    RenewalFailure::kTrustBundle, RenewalFailure::kSinkRefused};

constexpr char kMillis[] = "%Y-%m-%dT%H:%M:%E3SZ";
constexpr char kCaRequestsHelp[] =
    "CreateCertificate calls, by result (ok or gRPC code).";

}  // namespace

std::string_view CertStateName(CertState state) {
  switch (state) {
    case CertState::kNoCertificate:
      return "no_certificate";
    case CertState::kValid:
      return "valid";
    case CertState::kRenewing:
      return "renewing";
    case CertState::kExpired:
      return "expired";
  }
  return "unknown";
}

std::string_view RenewalFailureName(RenewalFailure reason) {
  switch (reason) {
    case RenewalFailure::kKey:
      return "key";
    case RenewalFailure::kToken:
      return "token";
    case RenewalFailure::kCa:
      return "ca";
    case RenewalFailure::kBadResponse:
      return "bad_response";
    case RenewalFailure::kTrustBundle:
      return "trust_bundle";
    case RenewalFailure::kSinkRefused:
      return "sink_refused";
  }
  return "unknown";
}

// Metric objects, looked up once: the renewal thread then touches only lock-free
// counters and gauges (except the rare per-gRPC-code counter, looked up on error).
struct Agent::Metrics {
  explicit Metrics(metrics::Registry& r)
      : registry(r),
        rotations_ok(r.GetCounter("tandem_agent_rotations_total",
                                  "Certificate renewals, by result.",
                                  {{"result", "success"}})),
        rotations_failed(r.GetCounter("tandem_agent_rotations_total",
                                      "Certificate renewals, by result.",
                                      {{"result", "failure"}})),
        ca_ok(r.GetCounter("tandem_agent_ca_requests_total", kCaRequestsHelp,
                           {{"result", "ok"}})),
        ca_latency(r.GetHistogram("tandem_agent_ca_request_duration_seconds",
                                  "Latency of CreateCertificate calls, any result.",
                                  metrics::DefaultLatencyBuckets())),
        expiry(r.GetGauge("tandem_agent_certificate_expiry_timestamp_seconds",
                          "Not-after of the certificate in force (0: none).")),
        issued(r.GetGauge("tandem_agent_certificate_issued_timestamp_seconds",
                          "Start of the lifetime renewals are scheduled on: the "
                          "certificate's not-before, or when the agent asked for it if "
                          "the CA back-dated not-before (0: none).")),
        consecutive_failures(r.GetGauge("tandem_agent_consecutive_failures",
                                        "Failed renewals since the last success.")) {
    for (RenewalFailure f : kAllFailures) {
      failures[static_cast<int>(f)] = &r.GetCounter(
          "tandem_agent_rotation_failures_total", "Failed renewals, by reason.",
          {{"reason", std::string(RenewalFailureName(f))}});
    }
    for (CertState s : kAllStates) {
      states[static_cast<int>(s)] = &r.GetGauge(
          "tandem_agent_certificate_state",
          "1 for the state the workload certificate is in: no_certificate, valid, "
          "renewing or expired.",
          {{"state", std::string(CertStateName(s))}});
    }
  }

  metrics::Counter& CaResult(absl::StatusCode code) {
    return registry.GetCounter(
        "tandem_agent_ca_requests_total", kCaRequestsHelp,
        {{"result", absl::AsciiStrToLower(absl::StatusCodeToString(code))}});
  }

  metrics::Registry& registry;
  metrics::Counter& rotations_ok;
  metrics::Counter& rotations_failed;
  metrics::Counter& ca_ok;
  metrics::Histogram& ca_latency;
  metrics::Gauge& expiry;
  metrics::Gauge& issued;
  metrics::Gauge& consecutive_failures;
  metrics::Counter* failures[std::size(kAllFailures)];
  metrics::Gauge* states[std::size(kAllStates)];
};

Agent::Agent(AgentOptions options, CaClient* ca, SecretSink* sink)
    : options_(std::move(options)),
      spiffe_id_(absl::StrCat("spiffe://", options_.trust_domain, "/ns/", options_.ns,
                              "/sa/", options_.service_account)),
      ca_(ca),
      sink_(sink),
      metrics_(std::make_unique<Metrics>(
          options_.registry ? *options_.registry : metrics::Registry::Default())) {
  absl::MutexLock lock(&mu_);
  PublishStateLocked(absl::Now());
}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_.store(true);
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

CertState Agent::StateLocked(absl::Time now) const {
  if (phase_ != CertState::kNoCertificate && now >= not_after_)
    return CertState::kExpired;
  return phase_;
}

CertState Agent::state() const {
  absl::MutexLock lock(&mu_);
  return StateLocked(absl::Now());
}

void Agent::CaReachable() {
  absl::MutexLock lock(&mu_);
  if (!unreachable_ || ca_answered_) return;
  ca_answered_ = true;
  wake_.SignalAll();
}

bool Agent::ready() const {
  CertState s = state();
  return s == CertState::kValid || s == CertState::kRenewing;
}

void Agent::PublishStateLocked(absl::Time now) {
  CertState current = StateLocked(now);
  for (CertState s : kAllStates) {
    metrics_->states[static_cast<int>(s)]->Set(s == current ? 1 : 0);
  }
}

void Agent::Run() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  absl::Time next = absl::Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_.load() && absl::Now() < next) {
        if (ca_answered_) {
          // The CA is back: no point sleeping out a backoff that grew while it was
          // not; the jitter spreads agents whose streams came back together.
          ca_answered_ = false;
          next = RetryWhenReachable(options_.policy, next, absl::Now(), uniform(rng));
          log::Info("agent", "CA reachable again; renewal retry brought forward",
                    {{"renew_at", absl::FormatTime(kMillis, next, absl::UTCTimeZone())}});
          continue;
        }
        // Also wake at expiry, so the state gauge turns to "expired" on time.
        absl::Time deadline = next;
        if (not_after_ > absl::Now()) deadline = std::min(deadline, not_after_);
        wake_.WaitWithDeadline(&mu_, deadline);
        PublishStateLocked(absl::Now());
      }
      if (stopping_.load()) return;
      if (phase_ == CertState::kValid) phase_ = CertState::kRenewing;
      PublishStateLocked(absl::Now());
    }
    RenewalFailure reason = RenewalFailure::kCa;
    absl::Status s = RenewOnce(&reason);
    if (stopping_.load()) return;  // e.g. a call CaClient::Shutdown() cancelled
    absl::MutexLock lock(&mu_);
    // A CaReachable() during the attempt is stale: the attempt itself tells.
    ca_answered_ = false;
    unreachable_ = reason == RenewalFailure::kCa && !s.ok() && !ReachedCa(s.code());
    if (s.ok()) {
      failures_ = 0;
      metrics_->rotations_ok.Inc();
    } else {
      ++failures_;
      metrics_->rotations_failed.Inc();
      metrics_->failures[static_cast<int>(reason)]->Inc();
      log::Warn("agent", "renewal failed",
                {{"reason", std::string(RenewalFailureName(reason))},
                 {"in_a_row", failures_},
                 {"error", std::string(s.message())}});
    }
    metrics_->consecutive_failures.Set(failures_);
    PublishStateLocked(absl::Now());
    absl::Time not_before =
        phase_ == CertState::kNoCertificate ? absl::InfinitePast() : not_before_;
    next = NextRenewal(options_.policy, not_before, not_after_, absl::Now(), failures_,
                       uniform(rng));
    if (s.ok()) {
      // When it asked, how long the CA took and when the next renewal is due: enough
      // to tell from the log alone whether a renewal came late, and why.
      log::Info("agent", "certificate installed",
                {{"serial", serial_},
                 {"spiffe_id", spiffe_id_},
                 {"not_after",
                  absl::FormatTime(absl::RFC3339_sec, not_after_, absl::UTCTimeZone())},
                 {"ca_ms", absl::ToInt64Milliseconds(last_ca_call_)},
                 {"renew_at", absl::FormatTime(kMillis, next, absl::UTCTimeZone())}});
    }
  }
}

absl::Status Agent::RenewOnce(RenewalFailure* reason) {
  absl::StatusOr<PendingCredential> pending = NewCredentialRequest(spiffe_id_);
  if (!pending.ok()) {
    *reason = RenewalFailure::kKey;
    return pending.status();
  }
  absl::StatusOr<std::string> token = ReadFileToString(options_.token_file);
  if (!token.ok()) {
    *reason = RenewalFailure::kToken;
    return token.status();
  }
  std::string bearer(absl::StripAsciiWhitespace(*token));
  if (bearer.empty()) {
    *reason = RenewalFailure::kToken;
    return absl::FailedPreconditionError(
        absl::StrCat("token file ", options_.token_file, " is empty"));
  }
  absl::Time start = absl::Now();
  // The call waits for a reconnecting channel; while a certificate is valid, no longer
  // than its expiry (but 0.5 s at least, so a call made just before it is not cut
  // short), so the state turns expired on time and the retry schedule takes over.
  absl::Time call_deadline = absl::InfiniteFuture();
  {
    absl::MutexLock lock(&mu_);
    if (phase_ != CertState::kNoCertificate && not_after_ > start) {
      call_deadline = std::max(not_after_, start + absl::Milliseconds(500));
    }
  }
  absl::StatusOr<std::vector<std::string>> chain = ca_->CreateCertificate(
      pending->csr_pem, bearer, options_.requested_validity_seconds, call_deadline);
  last_ca_call_ = absl::Now() - start;
  metrics_->ca_latency.Observe(absl::ToDoubleSeconds(last_ca_call_));
  RecordCaCall(metrics_->registry, chain.status().code());
  if (!chain.ok()) {
    metrics_->CaResult(chain.status().code()).Inc();
    *reason = RenewalFailure::kCa;
    return chain.status();
  }
  metrics_->ca_ok.Inc();
  std::string extra_roots;
  if (!options_.extra_roots_file.empty()) {
    // A missing overlap bundle mid root-rotation could strand peers on the new root:
    // keep the current secret (and its bundle) instead of delivering a narrower one.
    absl::StatusOr<std::string> extra = ReadFileToString(options_.extra_roots_file);
    if (!extra.ok()) {
      *reason = RenewalFailure::kTrustBundle;
      return extra.status();
    }
    extra_roots = *std::move(extra);
  }
  std::string pinned_roots = options_.pinned_roots_pem;
  if (!options_.pinned_roots_file.empty()) {
    // Unreadable: refusing is safer than accepting a chain to any root.
    absl::StatusOr<std::string> pinned = ReadFileToString(options_.pinned_roots_file);
    if (!pinned.ok()) {
      *reason = RenewalFailure::kTrustBundle;
      return pinned.status();
    }
    pinned_roots = *std::move(pinned);
  }
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(pending->private_key_pem, *chain, extra_roots, spiffe_id_,
                       absl::Now(), pinned_roots);
  if (!issued.ok()) {
    *reason = RenewalFailure::kBadResponse;
    return issued.status();
  }
  if (absl::Status s = sink_->UpdateSecret(issued->secret); !s.ok()) {
    *reason = RenewalFailure::kSinkRefused;
    return s;
  }
  rotations_ok_.fetch_add(1);
  if (options_.on_certificate) options_.on_certificate(issued->serial, issued->not_after);
  absl::MutexLock lock(&mu_);
  phase_ = CertState::kValid;
  // Schedule from when we got it: CAs backdate not-before for clock skew, which would
  // otherwise make a short-lived certificate look half-spent on arrival.
  not_before_ = std::max(issued->not_before, start);
  not_after_ = issued->not_after;
  serial_ = issued->serial;
  metrics_->expiry.Set(static_cast<double>(absl::ToUnixSeconds(not_after_)));
  metrics_->issued.Set(static_cast<double>(absl::ToUnixSeconds(not_before_)));
  return absl::OkStatus();
}

}  // namespace tandem::agent
