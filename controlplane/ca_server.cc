// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3). Key material
// crosses to BoringSSL code (CaCore, JwtVerifier) as PEM strings.
#include "controlplane/ca_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <array>
#include <atomic>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "controlplane/jwt.h"
#include "controlplane/refusal_reason.h"
#include "istio/ca.grpc.pb.h"

namespace tandem::controlplane {
namespace {

// Results of CreateCertificate, the `result` label.
enum Result { kIssued, kUnauthenticated, kBadCsr, kUnavailable, kInternal, kResultCount };
const char* kResultNames[] = {"issued", "unauthenticated", "bad_csr", "unavailable",
                              "internal"};
constexpr std::array<double, 8> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01,
                                                  0.025, 0.05,   0.1,   1};
constexpr size_t kReasonCount = std::size(kRefusalReasons);

// Returns the index of `reason` in kRefusalReasons ("internal" when unknown).
size_t ReasonIndex(absl::string_view reason) {
  for (size_t i = 0; i < kReasonCount; ++i) {
    if (kRefusalReasons[i] == reason) return i;
  }
  return ReasonIndex("internal");
}

class CertificateService final
    : public istio::v1::auth::IstioCertificateService::Service {
 public:
  // `authenticator` may be null (renewals only). Both outlive the service.
  CertificateService(const CaCore* core, const TokenAuthenticator* authenticator)
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
    for (size_t r = 0; r < kReasonCount; ++r) {
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
      default:
        break;
    }
    std::string reason = RefusalReasonOf(status, "internal");
    results_[result].fetch_add(1, std::memory_order_relaxed);
    refusals_[ReasonIndex(reason)].fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "tandem-ca: refused (%s): %s\n", reason.c_str(),
                 std::string(status.message()).c_str());
    return grpc::Status(code, std::string(status.message()));
  }

  absl::StatusOr<ServiceAccount> Authenticate(grpc::ServerContext* context) {
    auto auth = context->client_metadata().find("authorization");
    if (auth != context->client_metadata().end()) {
      std::string value(auth->second.data(), auth->second.size());
      if (!absl::StartsWith(value, "Bearer ") || value.size() == 7) {
        return WithRefusalReason(
            absl::UnauthenticatedError("authorization header is not a Bearer token"),
            "malformed_header");
      }
      if (authenticator_ == nullptr) {
        return WithRefusalReason(
            absl::UnauthenticatedError("this CA accepts no tokens (no token authority "
                                       "configured); renew with a client certificate"),
            "no_token_authority");
      }
      return authenticator_->Authenticate(value.substr(7), absl::Now());
    }
    // No token: a renewal by a workload presenting its current certificate.
    std::shared_ptr<const grpc::AuthContext> auth_context = context->auth_context();
    // The leaf, then whatever chain the TLS stack reports (for intermediates).
    std::vector<grpc::string_ref> leaf =
        auth_context->FindPropertyValues("x509_pem_cert");
    if (leaf.empty()) {
      return WithRefusalReason(
          absl::UnauthenticatedError("no Bearer token and no client certificate"),
          "missing_credentials");
    }
    std::string pem(leaf[0].data(), leaf[0].size());
    for (const grpc::string_ref& c :
         auth_context->FindPropertyValues("x509_pem_cert_chain")) {
      pem.append(c.data(), c.size());
    }
    return core_->AuthenticatePeer(pem, absl::Now());
  }

  grpc::Status Handle(grpc::ServerContext* context,
                      const istio::v1::auth::IstioCertificateRequest* request,
                      istio::v1::auth::IstioCertificateResponse* response) {
    absl::StatusOr<ServiceAccount> account = Authenticate(context);
    if (!account.ok()) {
      // A refusal of the caller is always UNAUTHENTICATED; only an unreachable
      // authority (kUnavailable) keeps its code so the caller retries.
      absl::Status status = account.status();
      if (status.code() != absl::StatusCode::kUnavailable &&
          status.code() != absl::StatusCode::kDeadlineExceeded &&
          status.code() != absl::StatusCode::kUnauthenticated) {
        absl::Status refused = absl::UnauthenticatedError(status.message());
        refused.SetPayload(kRefusalReasonPayload,
                           absl::Cord(RefusalReasonOf(status, "internal")));
        status = refused;
      }
      return Refuse(status);
    }
    absl::StatusOr<std::vector<std::string>> chain =
        core_->Issue(request->csr(), *account, request->validity_duration(), absl::Now());
    if (!chain.ok()) return Refuse(chain.status());
    for (std::string& pem : *chain) response->add_cert_chain(std::move(pem));
    results_[kIssued].fetch_add(1, std::memory_order_relaxed);
    return grpc::Status::OK;
  }

  const CaCore* core_;
  const TokenAuthenticator* authenticator_;
  std::array<std::atomic<uint64_t>, kResultCount> results_{};
  std::array<std::atomic<uint64_t>, kReasonCount> refusals_{};
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> latency_buckets_{};
  std::atomic<uint64_t> latency_micros_{0};
};

}  // namespace

struct CaServer::Impl {
  CaServerOptions options;
  std::unique_ptr<CaCore> core;
  std::unique_ptr<TokenAuthenticator> authenticator;
  std::unique_ptr<CertificateService> service;
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
  impl->service =
      std::make_unique<CertificateService>(impl->core.get(), impl->authenticator.get());
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
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", impl_->options.listen_address));
  }
  return absl::OkStatus();
}

void CaServer::Stop() {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server.reset();
  }
}

int CaServer::port() const { return impl_->port; }
const CaCore& CaServer::core() const { return *impl_->core; }
std::string CaServer::RenderMetrics() const { return impl_->service->RenderMetrics(); }

}  // namespace tandem::controlplane
