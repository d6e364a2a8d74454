// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3). Key material
// crosses to BoringSSL code (CaCore, JwtVerifier) as PEM strings.
#include "controlplane/server/ca_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <array>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "controlplane/auth/jwt.h"
#include "controlplane/auth/refusal_reason.h"
#include "controlplane/ca/serving_certificate_renewer.h"
#include "controlplane/server/blocking_work.h"
#include "controlplane/server/caller_authenticator.h"
#include "controlplane/server/reloadable_server_credentials.h"
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

// Concurrent TokenReviews in Kubernetes mode: at a 10 ms round trip, 1,600 per second.
constexpr int kTokenReviewThreads = 16;

// CreateCertificate on gRPC's callback API, as the policy streams are. On the sync API
// gRPC 1.51 started and ended a thread for about every eighth call at 1,000/s, and
// stalled the calls for 100-190 ms every 1.1 s, in step with its idle callback
// threads (docs/controlplane.md, "Scale"); here the call runs on the gRPC thread that
// read it, or, when `blocking` is set (TokenReview), on one of its threads.
class CertificateService final
    : public istio::v1::auth::IstioCertificateService::CallbackService {
 public:
  // All four outlive the service; `blocking` may be null.
  CertificateService(const CaCore* core, const CallerAuthenticator* authenticator,
                     BlockingWork* blocking, metrics::Registry* registry)
      : core_(core),
        authenticator_(authenticator),
        blocking_(blocking),
        issued_(registry->GetCounter("tandem_ca_certificates_issued_total",
                                     "Workload certificates issued.")),
        latency_(registry->GetHistogram(
            "tandem_ca_request_duration_seconds", "CreateCertificate latency.",
            {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1})) {
    for (int r = 0; r < kResultCount; ++r) {
      results_[r] = &registry->GetCounter("tandem_ca_requests_total",
                                          "CreateCertificate calls, by result.",
                                          {{"result", kResultNames[r]}});
    }
    for (size_t r = 0; r < kRefusalReasonCount; ++r) {
      refusals_[r] = &registry->GetCounter("tandem_ca_refusals_total",
                                           "CreateCertificate refusals, by reason.",
                                           {{"reason", std::string(kRefusalReasons[r])}});
    }
  }

  grpc::ServerUnaryReactor* CreateCertificate(
      grpc::CallbackServerContext* context,
      const istio::v1::auth::IstioCertificateRequest* request,
      istio::v1::auth::IstioCertificateResponse* response) override {
    const absl::Time start = absl::Now();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    // gRPC keeps the context, request and response until Finish.
    auto serve = [this, start, reactor, context, request, response] {
      grpc::Status status = Handle(context, request, response);
      latency_.Observe(absl::ToDoubleSeconds(absl::Now() - start));
      reactor->Finish(std::move(status));
    };
    if (blocking_ != nullptr) {
      blocking_->Run(std::move(serve));
    } else {
      serve();
    }
    return reactor;
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
    results_[result]->Inc();
    refusals_[RefusalReasonIndex(reason)]->Inc();
    log::Warn("ca", "certificate request refused",
              {{"reason", reason}, {"error", std::string(status.message())}});
    return grpc::Status(code, std::string(status.message()));
  }

  grpc::Status Handle(const grpc::CallbackServerContext* context,
                      const istio::v1::auth::IstioCertificateRequest* request,
                      istio::v1::auth::IstioCertificateResponse* response) {
    absl::StatusOr<ServiceAccount> account =
        authenticator_->Authenticate(context, absl::Now());
    if (!account.ok()) return Refuse(account.status());
    absl::StatusOr<std::vector<std::string>> chain =
        core_->Issue(request->csr(), *account, request->validity_duration(), absl::Now());
    if (!chain.ok()) return Refuse(chain.status());
    for (std::string& pem : *chain) response->add_cert_chain(std::move(pem));
    results_[kIssued]->Inc();
    issued_.Inc();
    return grpc::Status::OK;
  }

  const CaCore* core_;
  const CallerAuthenticator* authenticator_;
  BlockingWork* blocking_;
  std::array<metrics::Counter*, kResultCount> results_{};
  std::array<metrics::Counter*, kRefusalReasonCount> refusals_{};
  metrics::Counter& issued_;
  metrics::Histogram& latency_;
};

}  // namespace

struct CaServer::Impl {
  CaServerOptions options;
  metrics::Registry registry;  // the certificate service's; the policy server has one
  std::unique_ptr<CaCore> core;
  std::unique_ptr<TokenAuthenticator> authenticator;
  std::unique_ptr<CallerAuthenticator> callers;
  // Kubernetes mode only: runs the TokenReviews of CreateCertificate and of the
  // policy streams; outlives `server` and `policy`.
  std::unique_ptr<BlockingWork> blocking;
  std::unique_ptr<CertificateService> service;
  std::unique_ptr<PolicyServer> policy;  // null without policy or revocations
  // The gRPC port's own certificate, re-issued by `serving` and swapped into
  // `credentials`; both outlive `server`.
  std::unique_ptr<ServingCertificateRenewer> serving;
  std::shared_ptr<ReloadableServerCredentials> credentials;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  // The reload thread, stopped by `stop_reload`.
  std::thread reloader;
  absl::Notification stop_reload;
  // Told after each accepted reload (OnRootReload).
  absl::Mutex listeners_mu;
  std::vector<std::function<void()>> listeners ABSL_GUARDED_BY(listeners_mu);
  metrics::Counter& reloads_accepted = ReloadCounter("accepted");
  metrics::Counter& reloads_refused = ReloadCounter("refused");

  std::vector<std::function<void()>> ReloadListeners() {
    absl::MutexLock lock(&listeners_mu);
    return listeners;
  }

  metrics::Counter& ReloadCounter(const char* result) {
    return registry.GetCounter(
        "tandem_ca_root_reloads_total",
        "Changes of the CA's key, certificate or extra roots files "
        "taken in or refused.",
        {{"result", result}});
  }

  // Reload thread: re-reads the CA's files until Stop.
  void ReloadLoop() {
    while (!stop_reload.WaitForNotificationWithTimeout(options.root_reload_interval)) {
      absl::StatusOr<bool> swapped = core->Reload(absl::Now());
      if (!swapped.ok()) {
        reloads_refused.Inc();
        log::Error("ca", "CA files refused; still signing with the previous ones",
                   {{"error", std::string(swapped.status().message())}});
      } else if (*swapped) {
        reloads_accepted.Inc();
        log::Info("ca", "CA files reloaded: new issuance uses them",
                  {{"root_dir", options.core.root_dir}});
        // Clients that trust only the new bundle must reach this port too.
        serving->RenewNow();
        for (const std::function<void()>& listener : ReloadListeners()) listener();
      }
    }
  }
};

absl::StatusOr<std::unique_ptr<CaServer>> CaServer::Create(CaServerOptions options) {
  auto impl = std::make_unique<Impl>();
  absl::StatusOr<std::unique_ptr<CaCore>> core =
      CaCore::Create(options.core, absl::Now());
  if (!core.ok()) return core.status();
  impl->core = *std::move(core);
  ServingCertificateRenewer::Options serving;
  serving.name = "grpc";
  serving.dns_names = options.core.server_dns_names;
  serving.ip_addresses = options.core.server_ips;
  serving.ttl = options.serving_certificate_ttl;
  serving.registry = &impl->registry;
  serving.metric_prefix = "tandem_ca_serving_certificate";
  absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>> renewer =
      ServingCertificateRenewer::Create(std::move(serving), impl->core.get());
  if (!renewer.ok()) return renewer.status();
  impl->serving = *std::move(renewer);
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
    impl->blocking = std::make_unique<BlockingWork>(kTokenReviewThreads);
  }
  impl->callers = std::make_unique<CallerAuthenticator>(
      impl->core.get(), impl->authenticator.get(), options.revocations);
  impl->service = std::make_unique<CertificateService>(
      impl->core.get(), impl->callers.get(), impl->blocking.get(), &impl->registry);
  if (options.policy != nullptr || options.revocations != nullptr) {
    impl->policy = std::make_unique<PolicyServer>(
        PolicyServerOptions{options.core.trust_domain, options.policy,
                            options.revocations, options.policy_poll_interval,
                            impl->blocking.get()},
        impl->callers.get());
  }
  impl->options = std::move(options);
  return std::unique_ptr<CaServer>(new CaServer(std::move(impl)));
}

CaServer::CaServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CaServer::~CaServer() { Stop(); }

absl::Status CaServer::Start() {
  // Client certificates are requested, not verified by gRPC: CallerAuthenticator checks
  // them against the roots in force at the call.
  absl::StatusOr<std::shared_ptr<ReloadableServerCredentials>> credentials =
      ReloadableServerCredentials::Create(
          GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY,
          {impl_->serving->first().key_pem, impl_->serving->first().chain_pem,
           impl_->core->trust_bundle_pem()});
  if (!credentials.ok()) return credentials.status();
  impl_->credentials = *std::move(credentials);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.listen_address, impl_->credentials,
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
  impl_->serving->Start([credentials = impl_->credentials,
                         core = impl_->core.get()](const ServingCertificate& fresh) {
    return credentials->Update(
        {fresh.key_pem, fresh.chain_pem, core->trust_bundle_pem()});
  });
  if (impl_->options.root_reload_interval > absl::ZeroDuration()) {
    impl_->reloader = std::thread([impl = impl_.get()] { impl->ReloadLoop(); });
  }
  return absl::OkStatus();
}

void CaServer::Stop() {
  if (impl_->reloader.joinable()) {
    impl_->stop_reload.Notify();
    impl_->reloader.join();
  }
  impl_->serving->Stop();
  // Policy streams never end by themselves: end them before the server waits for them.
  if (impl_->policy) impl_->policy->Stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server.reset();
  }
}

int CaServer::port() const { return impl_->port; }
std::string CaServer::serving_serial() const { return impl_->serving->current_serial(); }
void CaServer::OnRootReload(std::function<void()> listener) {
  absl::MutexLock lock(&impl_->listeners_mu);
  impl_->listeners.push_back(std::move(listener));
}
const CaCore& CaServer::core() const { return *impl_->core; }
const PolicyServer* CaServer::policy_server() const { return impl_->policy.get(); }
std::string CaServer::RenderMetrics() const {
  std::string out = impl_->registry.RenderPrometheus();
  if (impl_->policy) out += impl_->policy->RenderMetrics();
  return out;
}

}  // namespace tandem::controlplane
