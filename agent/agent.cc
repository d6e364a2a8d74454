#include "agent/agent.h"

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "common/file_util.h"

namespace tandem::agent {
namespace {}  // namespace

Agent::Agent(AgentOptions options, CaClient* ca, SecretSink* sink)
    : options_(std::move(options)),
      spiffe_id_(absl::StrCat("spiffe://", options_.trust_domain, "/ns/", options_.ns,
                              "/sa/", options_.service_account)),
      ca_(ca),
      sink_(sink) {}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_.exchange(true)) return;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

CertState Agent::state() const {
  absl::MutexLock lock(&mu_);
  if (not_after_ == absl::InfinitePast()) return CertState::kNoCertificate;
  return absl::Now() < not_after_ ? CertState::kValid : CertState::kExpired;
}

void Agent::Run() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  absl::Time next = absl::Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_.load() && absl::Now() < next) {
        wake_.WaitWithDeadline(&mu_, next);
      }
      if (stopping_.load()) return;
    }
    absl::Status s = RenewOnce();
    absl::MutexLock lock(&mu_);
    if (s.ok()) {
      failures_ = 0;
      last_error_.clear();
    } else {
      ++failures_;
      last_error_ = std::string(s.message());
      std::fprintf(stderr, "tandem-agent: renewal failed (%d in a row): %s\n", failures_,
                   last_error_.c_str());
    }
    next = NextRenewal(options_.policy, not_before_, not_after_, absl::Now(), failures_,
                       uniform(rng));
  }
}

absl::Status Agent::RenewOnce() {
  absl::StatusOr<PendingCredential> pending = NewCredentialRequest(spiffe_id_);
  if (!pending.ok()) return pending.status();
  absl::StatusOr<std::string> token = ReadFileToString(options_.token_file);
  if (!token.ok()) {
    rotations_failed_.fetch_add(1);
    return token.status();
  }
  absl::Time start = absl::Now();
  absl::StatusOr<std::vector<std::string>> chain = ca_->CreateCertificate(
      pending->csr_pem, std::string(absl::StripAsciiWhitespace(*token)),
      options_.requested_validity_seconds);
  ca_seconds_sum_.store(ca_seconds_sum_.load() +
                        absl::ToDoubleSeconds(absl::Now() - start));
  if (!chain.ok()) {
    ca_failed_.fetch_add(1);
    rotations_failed_.fetch_add(1);
    return chain.status();
  }
  ca_ok_.fetch_add(1);
  std::string extra_roots;
  if (!options_.extra_roots_file.empty()) {
    absl::StatusOr<std::string> extra = ReadFileToString(options_.extra_roots_file);
    if (extra.ok()) extra_roots = *extra;
  }
  absl::StatusOr<IssuedCredential> issued = AcceptCredential(
      pending->private_key_pem, *chain, extra_roots, spiffe_id_, absl::Now());
  if (!issued.ok()) {
    rotations_failed_.fetch_add(1);
    return issued.status();
  }
  if (absl::Status s = sink_->UpdateSecret(issued->secret); !s.ok()) {
    rotations_failed_.fetch_add(1);
    return s;
  }
  rotations_ok_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  // Schedule from when we got it: CAs backdate not-before for clock skew, which would
  // otherwise make a short-lived certificate look half-spent on arrival.
  not_before_ = std::max(issued->not_before, start);
  not_after_ = issued->not_after;
  serial_ = issued->serial;
  std::fprintf(
      stderr, "tandem-agent: certificate %s for %s, valid until %s\n", serial_.c_str(),
      spiffe_id_.c_str(),
      absl::FormatTime(absl::RFC3339_sec, not_after_, absl::UTCTimeZone()).c_str());
  return absl::OkStatus();
}

std::string Agent::RenderMetrics() const {
  absl::MutexLock lock(&mu_);
  int state = not_after_ == absl::InfinitePast() ? 0 : (absl::Now() < not_after_ ? 1 : 2);
  return absl::StrCat(
      "# HELP tandem_agent_rotations_total Certificate renewals, by result.\n"
      "# TYPE tandem_agent_rotations_total counter\n"
      "tandem_agent_rotations_total{result=\"success\"} ",
      rotations_ok_.load(), "\ntandem_agent_rotations_total{result=\"failure\"} ",
      rotations_failed_.load(),
      "\n# HELP tandem_agent_ca_requests_total CreateCertificate calls, by result.\n"
      "# TYPE tandem_agent_ca_requests_total counter\n"
      "tandem_agent_ca_requests_total{result=\"ok\"} ",
      ca_ok_.load(), "\ntandem_agent_ca_requests_total{result=\"error\"} ",
      ca_failed_.load(),
      "\n# HELP tandem_agent_ca_request_seconds_total Time spent in CA calls.\n"
      "# TYPE tandem_agent_ca_request_seconds_total counter\n"
      "tandem_agent_ca_request_seconds_total ",
      ca_seconds_sum_.load(),
      "\n# HELP tandem_agent_certificate_state 0 no certificate, 1 valid, 2 expired.\n"
      "# TYPE tandem_agent_certificate_state gauge\ntandem_agent_certificate_state ",
      state,
      "\n# HELP tandem_agent_certificate_expiry_timestamp_seconds Not-after of the "
      "current certificate.\n# TYPE tandem_agent_certificate_expiry_timestamp_seconds "
      "gauge\n"
      "tandem_agent_certificate_expiry_timestamp_seconds ",
      state == 0 ? 0 : absl::ToUnixSeconds(not_after_),
      "\n# HELP tandem_agent_consecutive_failures Failed renewals since the last "
      "success.\n"
      "# TYPE tandem_agent_consecutive_failures "
      "gauge\ntandem_agent_consecutive_failures ",
      failures_, "\n");
}

}  // namespace tandem::agent
