#ifndef TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_
#define TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/https_client.h"

namespace tandem::metrics {
class Counter;
class Registry;
}  // namespace tandem::metrics

namespace tandem::controlplane {

// The Service a webhook's clientConfig.service must name for us to fill its caBundle.
struct WebhookService {
  std::string name = "tandem-injector";
  std::string ns = "tandem-system";
};

struct CaBundleEdit {
  std::string object_json;  // the whole object, edited, to PUT back
  int matched = 0;          // webhooks pointing to our Service
  bool changed = false;     // some caBundle differed
};

// Sets clientConfig.caBundle to `ca_bundle_base64` on every webhook of a
// MutatingWebhookConfiguration (the API server's JSON) whose clientConfig.service is
// `service`; every other field is kept, metadata.resourceVersion included, so a PUT
// of the result is refused with 409 if the object changed meanwhile. Untrusted input:
// InvalidArgument for anything but a JSON object with a "webhooks" list, or nesting
// deeper than 64. Never throws.
absl::StatusOr<CaBundleEdit> SetWebhookCaBundle(std::string_view config_json,
                                                const WebhookService& service,
                                                std::string_view ca_bundle_base64);

// Keeps the caBundle of the MutatingWebhookConfiguration `config_name` equal to the
// mesh's root bundle, so the API server can verify the injector's certificate (which
// tandem-ca issues from that root): GET the object, set caBundle on our webhooks, PUT
// it with its resourceVersion, and on 409 Conflict start again from a fresh GET. Runs
// at Start and again every resync interval, which also repairs a caBundle that a
// `kubectl apply` of the manifest emptied. Failures (no such object, RBAC, API server
// down) are logged and counted, retried with capped exponential backoff, and never
// stop the CA. The API server is reached as in TokenReviewAuthenticator: HTTPS
// verified with its CA, the service-account token re-read from its file per call.
//
// Threading: Create/Start/Stop/destructor on the owning thread; Start runs the loop on
// a thread of its own; Publish from one thread at a time (the loop's, or a test's
// before Start).
class WebhookCaBundlePublisher {
 public:
  struct Options {
    std::string api_server;             // "host:port"
    std::string ca_pem;                 // verifies the API server
    std::string server_name;            // expected in its certificate; default: the host
    std::string credential_token_path;  // re-read for every call; or:
    std::string credential_token;
    std::string config_name = "tandem-sidecar-injector";
    WebhookService service;
    std::string ca_bundle_pem;  // the roots the injector's certificate chains to
    // Or, when set, called at every round for them (any thread that Publishes):
    // tandem-ca's bundle changes when it reloads its root files.
    std::function<std::string()> ca_bundle_source;
    absl::Duration timeout = absl::Seconds(5);
    absl::Duration resync_interval = absl::Minutes(1);
    absl::Duration max_backoff = absl::Seconds(30);
    int max_conflicts = 5;  // fresh GET + PUT rounds after a 409, per Publish
    // Counts tandem_ca_webhook_ca_bundle_syncs_total{result}: updated, unchanged,
    // not_found, no_matching_webhook, conflict, unauthorized, api_error, unavailable,
    // malformed. Must outlive the publisher.
    metrics::Registry* registry = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>> Create(
      Options options);
  ~WebhookCaBundlePublisher();  // Stop()s

  // One round: GET, edit, PUT (retrying conflicts). OK when the caBundle is in place
  // (updated or already right); NotFound when the object does not exist,
  // FailedPrecondition when no webhook points to our Service, PermissionDenied on
  // 401/403, Aborted when conflicts outlast max_conflicts, Unavailable otherwise.
  absl::Status Publish();

  void Start();
  void Stop();

 private:
  WebhookCaBundlePublisher(Options options, std::unique_ptr<HttpsClient> client);
  // Publish's work; `result` receives the metric label.
  absl::Status PublishOnce(const char** result);
  absl::StatusOr<HttpsResponse> Call(const std::string& method,
                                     const std::string& body) const;
  // The counter for `result` (registered on first use); null without a registry.
  metrics::Counter* Syncs(const char* result) const;

  const Options options_;
  const std::string path_;
  std::unique_ptr<HttpsClient> client_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  absl::CondVar stop_cv_;  // signalled by Stop()
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_
