#include "controlplane/injection/webhook_ca_bundle.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "controlplane/kube/json_depth.h"
#include "nlohmann/json.hpp"

namespace tandem::controlplane {
namespace {

constexpr const char* kResults[] = {
    "updated",  "unchanged",    "not_found", "no_matching_webhook",
    "conflict", "unauthorized", "api_error", "unavailable",
    "malformed"};

bool IsString(const nlohmann::ordered_json& object, const char* key,
              const std::string& want) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() &&
         it->get_ref<const std::string&>() == want;
}

}  // namespace

absl::StatusOr<CaBundleEdit> SetWebhookCaBundle(std::string_view config_json,
                                                const WebhookService& service,
                                                std::string_view ca_bundle_base64) {
  if (!JsonNestsWithin({config_json.data(), config_json.size()}, kMaxApiJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook configuration: nested deeper than ", kMaxApiJsonDepth));
  }
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(
      config_json.begin(), config_json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("webhook configuration: not a JSON object");
  }
  auto webhooks = doc.find("webhooks");
  if (webhooks == doc.end() || !webhooks->is_array()) {
    return absl::InvalidArgumentError("webhook configuration: no \"webhooks\" list");
  }
  CaBundleEdit edit;
  const std::string bundle(ca_bundle_base64);
  for (nlohmann::ordered_json& hook : *webhooks) {
    if (!hook.is_object()) continue;
    auto client = hook.find("clientConfig");
    if (client == hook.end() || !client->is_object()) continue;
    auto svc = client->find("service");
    if (svc == client->end() || !svc->is_object() ||
        !IsString(*svc, "name", service.name) ||
        !IsString(*svc, "namespace", service.ns)) {
      continue;
    }
    ++edit.matched;
    if (IsString(*client, "caBundle", bundle)) continue;
    (*client)["caBundle"] = bundle;
    edit.changed = true;
  }
  // `replace`: never throws on invalid UTF-8 (the parser refuses it anyway).
  edit.object_json =
      doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return edit;
}

absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>>
WebhookCaBundlePublisher::Create(Options options) {
  if (options.client == nullptr) {
    return absl::InvalidArgumentError(
        "webhook caBundle: a Kubernetes client is required");
  }
  if (options.config_name.empty() ||
      options.config_name.find_first_of("/?# ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook configuration name \"", options.config_name, "\""));
  }
  if (options.ca_bundle_pem.empty() && !options.ca_bundle_source) {
    return absl::InvalidArgumentError("webhook caBundle: no root bundle");
  }
  return std::unique_ptr<WebhookCaBundlePublisher>(
      new WebhookCaBundlePublisher(std::move(options)));
}

WebhookCaBundlePublisher::WebhookCaBundlePublisher(Options options)
    : options_(std::move(options)),
      path_(absl::StrCat(
          "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/",
          options_.config_name)) {
  for (const char* result : kResults) Syncs(result);  // every series from the start
}

WebhookCaBundlePublisher::~WebhookCaBundlePublisher() { Stop(); }

metrics::Counter* WebhookCaBundlePublisher::Syncs(const char* result) const {
  if (options_.registry == nullptr) return nullptr;
  return &options_.registry->GetCounter(
      "tandem_ca_webhook_ca_bundle_syncs_total",
      "Rounds keeping the injector webhook's caBundle in place, by result.",
      {{"result", result}});
}

std::string WebhookCaBundlePublisher::Bundle() const {
  return options_.ca_bundle_source ? options_.ca_bundle_source() : options_.ca_bundle_pem;
}

absl::Status WebhookCaBundlePublisher::PublishOnce(const std::string& bundle,
                                                   const char** result) {
  auto http_error = [&](const char* verb, int status) {
    if (status == 401 || status == 403) {
      *result = "unauthorized";
      return absl::PermissionDeniedError(
          absl::StrCat(verb, " ", path_, ": HTTP ", status,
                       " (RBAC: get and update on this mutatingwebhookconfiguration)"));
    }
    *result = "api_error";
    return absl::UnavailableError(absl::StrCat(verb, " ", path_, ": HTTP ", status));
  };
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<HttpsResponse> got = options_.client->Call("GET", path_);
    if (!got.ok()) {
      *result = "unavailable";
      return absl::UnavailableError(
          absl::StrCat("GET ", path_, ": ", got.status().message()));
    }
    if (got->status == 404) {
      *result = "not_found";
      return absl::NotFoundError(absl::StrCat("MutatingWebhookConfiguration \"",
                                              options_.config_name, "\" does not exist"));
    }
    if (got->status != 200) return http_error("GET", got->status);
    // Edited as text, not through KubeClient::Update's parsed object: every field the
    // API server sent goes back as it came, in its order.
    absl::StatusOr<CaBundleEdit> edit =
        SetWebhookCaBundle(got->body, options_.service, absl::Base64Escape(bundle));
    if (!edit.ok()) {
      *result = "malformed";
      return absl::UnavailableError(edit.status().message());
    }
    if (edit->matched == 0) {
      *result = "no_matching_webhook";
      return absl::FailedPreconditionError(
          absl::StrCat("MutatingWebhookConfiguration \"", options_.config_name,
                       "\" has no webhook whose clientConfig.service is ",
                       options_.service.ns, "/", options_.service.name));
    }
    if (!edit->changed) {
      *result = "unchanged";
      return absl::OkStatus();
    }
    absl::StatusOr<HttpsResponse> put =
        options_.client->Call("PUT", path_, edit->object_json);
    if (!put.ok()) {
      *result = "unavailable";
      return absl::UnavailableError(
          absl::StrCat("PUT ", path_, ": ", put.status().message()));
    }
    if (put->status == 200 || put->status == 201) {
      *result = "updated";
      return absl::OkStatus();
    }
    if (put->status != 409) return http_error("PUT", put->status);
    // Someone else updated the object since our GET: start again from a fresh copy.
    if (attempt + 1 >= options_.max_conflicts) {
      *result = "conflict";
      return absl::AbortedError(absl::StrCat("PUT ", path_, ": still conflicting after ",
                                             options_.max_conflicts, " attempts"));
    }
  }
}

absl::Status WebhookCaBundlePublisher::PublishBundle(const std::string& bundle) {
  const char* result = "unavailable";
  absl::Status status = PublishOnce(bundle, &result);
  if (metrics::Counter* c = Syncs(result)) c->Inc();
  if (status.ok() && std::string_view(result) == "updated") {
    log::Info("ca", "webhook caBundle updated",
              {{"webhook_config", options_.config_name}});
  }
  return status;
}

absl::Status WebhookCaBundlePublisher::Publish() { return PublishBundle(Bundle()); }

void WebhookCaBundlePublisher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void WebhookCaBundlePublisher::Run() {
  absl::Time next_round = absl::InfinitePast();
  absl::Duration backoff = absl::Milliseconds(100);
  bool was_writer = false;
  std::string published;  // the bundle of the last round that put it in place
  absl::MutexLock lock(&mu_);
  while (true) {
    const bool writer = !options_.may_write || options_.may_write();
    // A new writer cannot know what the last one left undone: a round at once.
    if (writer && !was_writer) next_round = absl::InfinitePast();
    was_writer = writer;
    std::string bundle;
    if (writer) {
      bundle = Bundle();
      if (bundle != published) next_round = absl::InfinitePast();  // a root rotation
    }
    if (writer && absl::Now() >= next_round) {
      // The API call takes up to its timeout: Stop() must not wait for the lock.
      mu_.Unlock();
      absl::Status status = PublishBundle(bundle);
      mu_.Lock();
      if (status.ok()) {
        published = bundle;
        backoff = absl::Milliseconds(100);
        next_round = absl::Now() + options_.resync_interval;
      } else {
        log::Warn("ca", "webhook caBundle not in place; retrying",
                  {{"webhook_config", options_.config_name},
                   {"error", std::string(status.message())},
                   {"retry_in", absl::FormatDuration(backoff)}});
        next_round = absl::Now() + backoff;
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
    }
    // A CondVar rather than an absl::Condition (serving_certificate_renewer.cc says
    // why).
    const absl::Time until = std::min(absl::Now() + options_.check_interval,
                                      writer ? next_round : absl::InfiniteFuture());
    while (!stop_requested_ && absl::Now() < until)
      stop_cv_.WaitWithDeadline(&mu_, until);
    if (stop_requested_) return;
  }
}

void WebhookCaBundlePublisher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
    stop_cv_.Signal();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace tandem::controlplane
