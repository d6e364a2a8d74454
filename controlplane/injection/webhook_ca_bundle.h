#ifndef TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_
#define TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/kube_client.h"

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
// it with its resourceVersion, and on 409 Conflict start again from a fresh GET. A
// round runs at Start, every resync interval (which also repairs a caBundle that a
// `kubectl apply` of the manifest emptied), as soon as the bundle changes (a root
// rotation) and as soon as this replica becomes the writer. With `may_write` set, only
// while it returns true (the Lease holder, like the trust-root ConfigMaps) does the
// publisher make any request: replicas do not fight over one object. Failures (no such
// object, RBAC, API server down) are logged and counted, retried with capped
// exponential backoff, and never stop the CA. Requests go through the process's
// shared KubeClient (its token handling: re-read, and retried once after a 401).
//
// Threading: Create/Start/Stop/destructor on the owning thread; Start runs the loop on
// a thread of its own; Publish from one thread at a time (the loop's, or a test's
// before Start).
class WebhookCaBundlePublisher {
 public:
  struct Options {
    const KubeClient* client = nullptr;  // outlives the publisher
    std::string config_name = "tandem-sidecar-injector";
    WebhookService service;
    std::string ca_bundle_pem;  // the roots the injector's certificate chains to
    // Or, when set, called at every check for them (the loop's thread, or Publish's):
    // tandem-ca's bundle changes when it reloads its root files.
    std::function<std::string()> ca_bundle_source;
    std::function<bool()> may_write;  // null: always (a single replica)
    absl::Duration resync_interval = absl::Minutes(1);
    // How often the loop looks at may_write and the bundle between rounds.
    absl::Duration check_interval = absl::Seconds(1);
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
  // Makes its requests whatever may_write says (the loop asks it first).
  absl::Status Publish();

  void Start();
  void Stop();

 private:
  explicit WebhookCaBundlePublisher(Options options);
  // Publish's work on `bundle`; `result` receives the metric label.
  absl::Status PublishOnce(const std::string& bundle, const char** result);
  std::string Bundle() const;
  absl::Status PublishBundle(const std::string& bundle);
  void Run();
  // The counter for `result` (registered on first use); null without a registry.
  metrics::Counter* Syncs(const char* result) const;

  const Options options_;
  const std::string path_;
  std::thread thread_;
  absl::Mutex mu_;
  absl::CondVar stop_cv_;  // signalled by Stop()
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_INJECTION_WEBHOOK_CA_BUNDLE_H_
