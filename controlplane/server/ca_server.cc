// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3). Key material
// crosses to BoringSSL code (CaCore, JwtVerifier) as PEM strings.
#include "controlplane/server/ca_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <array>
#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "controlplane/auth/jwt.h"
#include "controlplane/auth/refusal_reason.h"
#include "controlplane/server/caller_authenticator.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::controlplane {
namespace {

// Results of CreateCertificate, the `result` label.
enum Result {
  kIssued,
  kUnauthenticated,
  kBadCsr,
  kUnavailable,
  kRevoked,
  kInternal,
  kResultCount
};
const char* kResultNames[] = {"issued",      "unauthenticated", "bad_csr",
                              "unavailable", "revoked",         "internal"};
constexpr std::array<double, 8> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01,
                                                  0.025, 0.05,   0.1,   1};
class CertificateService final
    : public istio::v1::auth::IstioCertificateService::Service {
 public:
  // Both outlive the service.
  CertificateService(const CaCore* core, const CallerAuthenticator* authenticator)
      : core_(core), authenticator_(authenticator) {}

  grpc::Status CreateCertificate(
      grpc::ServerContext* context,
      const istio::v1::auth::IstioCertificateRequest* request,
      istio::v1::auth::IstioCertificateResponse* response) override {
    absl::Time start = absl::Now();
    grpc::Status status = Handle(context, request, response);
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    size_t bucket = 0;
    while (bucket < kLatencyBounds.size() && seconds > kLatencyBounds[bucket]) ++bucket;
    latency_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    latency_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6),
                              std::memory_order_relaxed);
    return status;
  }

  std::string RenderMetrics() const {
    std::string out =
        "# HELP tandem_ca_requests_total CreateCertificate calls, by result.\n"
        "# TYPE tandem_ca_requests_total counter\n";
    for (int r = 0; r < kResultCount; ++r) {
      absl::StrAppend(&out, "tandem_ca_requests_total{result=\"", kResultNames[r], "\"} ",
                      results_[r].load(), "\n");
    }
    absl::StrAppend(&out,
                    "# HELP tandem_ca_refusals_total CreateCertificate refusals, by "
                    "reason.\n# TYPE tandem_ca_refusals_total counter\n");
    for (size_t r = 0; r < kRefusalReasonCount; ++r) {
      absl::StrAppend(&out, "tandem_ca_refusals_total{reason=\"", kRefusalReasons[r],
                      "\"} ", refusals_[r].load(), "\n");
    }
    absl::StrAppend(
        &out,
        "# HELP tandem_ca_certificates_issued_total Workload certificates "
        "issued.\n# TYPE tandem_ca_certificates_issued_total counter\n"
        "tandem_ca_certificates_issued_total ",
        results_[kIssued].load(), "\n",
        "# HELP tandem_ca_request_duration_seconds CreateCertificate latency.\n"
        "# TYPE tandem_ca_request_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
      cumulative += latency_buckets_[i].load();
      absl::StrAppend(&out, "tandem_ca_request_duration_seconds_bucket{le=\"",
                      absl::StrFormat("%g", kLatencyBounds[i]), "\"} ", cumulative, "\n");
    }
    cumulative += latency_buckets_[kLatencyBounds.size()].load();
    absl::StrAppend(&out, "tandem_ca_request_duration_seconds_bucket{le=\"+Inf\"} ",
                    cumulative, "\ntandem_ca_request_duration_seconds_sum ",
                    absl::StrFormat("%.6f", latency_micros_.load() / 1e6),
                    "\ntandem_ca_request_duration_seconds_count ", cumulative, "\n");
    return out;
  }

 private:
  grpc::Status Refuse(const absl::Status& status) {
    Result result = kInternal;
    grpc::StatusCode code = grpc::StatusCode::INTERNAL;
    switch (status.code()) {
      case absl::StatusCode::kUnauthenticated:
        result = kUnauthenticated;
        code = grpc::StatusCode::UNAUTHENTICATED;
        break;
      case absl::StatusCode::kInvalidArgument:
        result = kBadCsr;
        code = grpc::StatusCode::INVALID_ARGUMENT;
        break;
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
        result = kUnavailable;
        code = grpc::StatusCode::UNAVAILABLE;
        break;
      case absl::StatusCode::kPermissionDenied:
        result = kRevoked;
        code = grpc::StatusCode::PERMISSION_DENIED;
        break;
      default:
        break;
    }
    std::string reason = RefusalReasonOf(status, "internal");
    results_[result].fetch_add(1, std::memory_order_relaxed);
    refusals_[RefusalReasonIndex(reason)].fetch_add(1, std::memory_order_relaxed);
    log::Warn("ca", "certificate request refused",
              {{"reason", reason}, {"error", std::string(status.message())}});
    return grpc::Status(code, std::string(status.message()));
  }

  grpc::Status Handle(grpc::ServerContext* context,
                      const istio::v1::auth::IstioCertificateRequest* request,
                      istio::v1::auth::IstioCertificateResponse* response) {
    absl::StatusOr<ServiceAccount> account =
        authenticator_->Authenticate(context, absl::Now());
    if (!account.ok()) return Refuse(account.status());
    absl::StatusOr<std::vector<std::string>> chain =
        core_->Issue(request->csr(), *account, request->validity_duration(), absl::Now());
    if (!chain.ok()) return Refuse(chain.status());
    for (std::string& pem : *chain) response->add_cert_chain(std::move(pem));
    results_[kIssued].fetch_add(1, std::memory_order_relaxed);
    return grpc::Status::OK;
  }

  const CaCore* core_;
  const CallerAuthenticator* authenticator_;
  std::array<std::atomic<uint64_t>, kResultCount> results_{};
  std::array<std::atomic<uint64_t>, kRefusalReasonCount> refusals_{};
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> latency_buckets_{};
  std::atomic<uint64_t> latency_micros_{0};
};

}  // namespace

struct CaServer::Impl {
  CaServerOptions options;
  std::unique_ptr<CaCore> core;
  std::unique_ptr<TokenAuthenticator> authenticator;
  std::unique_ptr<CallerAuthenticator> callers;
  std::unique_ptr<CertificateService> service;
  std::unique_ptr<PolicyServer> policy;  // null without policy or revocations
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

absl::StatusOr<std::unique_ptr<CaServer>> CaServer::Create(CaServerOptions options) {
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<std::unique_ptr<CaCore>> core =
      CaCore::Create(options.core, absl::Now());
  if (!core.ok()) return core.status();
  impl->core = *std::move(core);
  const bool standalone =
      !options.token_public_key_pem.empty() || !options.token_jwks_json.empty();
  if (standalone && !options.token_review.api_server.empty()) {
    return absl::InvalidArgumentError(
        "choose one token authority: public keys/JWKS (standalone) or TokenReview");
  }
  if (standalone) {
    absl::StatusOr<std::unique_ptr<JwtVerifier>> verifier =
        JwtVerifier::Create({options.token_public_key_pem, options.token_jwks_json,
                             options.audience, options.issuer});
    if (!verifier.ok()) return verifier.status();
    impl->authenticator = *std::move(verifier);
  } else if (!options.token_review.api_server.empty()) {
    TokenReviewAuthenticator::Options review = options.token_review;
    review.audiences.clear();
    if (!options.audience.empty()) review.audiences.push_back(options.audience);
    absl::StatusOr<std::unique_ptr<TokenReviewAuthenticator>> reviewer =
        TokenReviewAuthenticator::Create(std::move(review));
    if (!reviewer.ok()) return reviewer.status();
    impl->authenticator = *std::move(reviewer);
  }
  impl->callers = std::make_unique<CallerAuthenticator>(
      impl->core.get(), impl->authenticator.get(), options.revocations);
  impl->service =
      std::make_unique<CertificateService>(impl->core.get(), impl->callers.get());
  if (options.policy != nullptr || options.revocations != nullptr) {
    impl->policy = std::make_unique<PolicyServer>(
        PolicyServerOptions{options.core.trust_domain, options.policy,
                            options.revocations, options.policy_poll_interval},
        impl->callers.get());
  }
  impl->options = std::move(options);
  return std::unique_ptr<CaServer>(new CaServer(std::move(impl)));
}

CaServer::CaServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CaServer::~CaServer() { Stop(); }

absl::Status CaServer::Start() {
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  ssl.pem_key_cert_pairs.push_back(
      {impl_->core->server_key_pem(), impl_->core->server_chain_pem()});
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.listen_address, grpc::SslServerCredentials(ssl),
                           &impl_->port);
  builder.RegisterService(impl_->service.get());
  if (impl_->policy) {
    builder.RegisterService(impl_->policy->service());
    // Before the first stream: changes are watched from the state streams will see.
    impl_->policy->Start();
  }
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", impl_->options.listen_address));
  }
  return absl::OkStatus();
}

void CaServer::Stop() {
  // Policy streams never end by themselves: end them before the server waits for them.
  if (impl_->policy) impl_->policy->Stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server.reset();
  }
}

int CaServer::port() const { return impl_->port; }
const CaCore& CaServer::core() const { return *impl_->core; }
const PolicyServer* CaServer::policy_server() const { return impl_->policy.get(); }
std::string CaServer::RenderMetrics() const {
  std::string out = impl_->service->RenderMetrics();
  if (impl_->policy) out += impl_->policy->RenderMetrics();
  return out;
}

}  // namespace tandem::controlplane
