#include "controlplane/kube/trust_root_publisher.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace tandem::controlplane {
namespace {

constexpr const char* kResults[] = {"created", "updated", "unchanged", "error"};
constexpr char kManagedBy[] = "app.kubernetes.io/managed-by";
constexpr char kManager[] = "tandem-ca";

// Escapes a selector for a query string ('=' and ',' are all it can hold that need it).
std::string QueryEscape(const std::string& text) {
  return absl::StrReplaceAll(text, {{"%", "%25"},
                                    {"=", "%3D"},
                                    {",", "%2C"},
                                    {"!", "%21"},
                                    {" ", "%20"},
                                    {"&", "%26"}});
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrustRootPublisher>> TrustRootPublisher::Create(
    Options options) {
  if (options.client == nullptr || !options.bundle || options.configmap_name.empty() ||
      options.key.empty()) {
    return absl::InvalidArgumentError(
        "trust-root ConfigMaps: a client, a bundle, a name and a key are required");
  }
  if (options.configmap_name.find_first_of("/?#&=% ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust-root ConfigMap name \"", options.configmap_name, "\""));
  }
  return std::unique_ptr<TrustRootPublisher>(new TrustRootPublisher(std::move(options)));
}

TrustRootPublisher::TrustRootPublisher(Options options) : options_(std::move(options)) {
  for (const char* result : kResults) Syncs(result);  // every series from the start
  Informer::Options ns;
  ns.client = options_.client;
  ns.collection = "/api/v1/namespaces";
  if (!options_.namespace_selector.empty()) {
    ns.collection = WithQuery(
        ns.collection, "labelSelector=" + QueryEscape(options_.namespace_selector));
  }
  ns.watch_timeout = options_.watch_timeout;
  ns.on_event = [this](Informer::EventType type, const nlohmann::json& object) {
    if (type != Informer::EventType::kDeleted) MarkDirty(MetadataField(object, "name"));
  };
  namespaces_ = std::make_unique<Informer>(std::move(ns));
  Informer::Options cm;
  cm.client = options_.client;
  cm.collection = WithQuery(
      "/api/v1/configmaps",
      "fieldSelector=" + QueryEscape("metadata.name=" + options_.configmap_name));
  cm.watch_timeout = options_.watch_timeout;
  cm.on_event = [this](Informer::EventType, const nlohmann::json& object) {
    MarkDirty(MetadataField(object, "namespace"));
  };
  configmaps_ = std::make_unique<Informer>(std::move(cm));
}

TrustRootPublisher::~TrustRootPublisher() { Stop(); }

metrics::Counter* TrustRootPublisher::Syncs(const char* result) const {
  if (options_.registry == nullptr) return nullptr;
  return &options_.registry->GetCounter(
      "tandem_ca_trust_root_syncs_total",
      "Writes and checks of the trust-root ConfigMap in served namespaces, by result.",
      {{"result", result}});
}

void TrustRootPublisher::MarkDirty(const std::string& ns) {
  if (ns.empty()) return;
  absl::MutexLock lock(&mu_);
  dirty_.insert(ns);
  wake_.Signal();
}

bool TrustRootPublisher::Serves(const std::string& ns) const {
  std::optional<nlohmann::json> object = namespaces_->Get(ns);
  if (!object) return false;
  auto status = object->find("status");
  // A namespace being deleted refuses new objects; ours goes with it.
  return status == object->end() || !status->is_object() ||
         status->value("phase", "") != "Terminating";
}

bool TrustRootPublisher::Reconcile(const std::string& ns, const std::string& bundle) {
  if (!Serves(ns)) return true;  // not ours (any more): nothing to keep there
  // The copy from the watch says whether anything is to be done, without a request.
  std::optional<nlohmann::json> seen =
      configmaps_->Get(absl::StrCat(ns, "/", options_.configmap_name));
  auto in_place = [&](const nlohmann::json& cm) {
    return cm.is_object() && cm.contains("data") && cm["data"].is_object() &&
           cm["data"].size() == 1 && cm["data"].value(options_.key, "") == bundle &&
           cm.contains("metadata") && cm["metadata"].contains("labels") &&
           cm["metadata"]["labels"].is_object() &&
           cm["metadata"]["labels"].value(kManagedBy, "") == kManager;
  };
  if (seen && in_place(*seen)) {
    if (metrics::Counter* c = Syncs("unchanged")) c->Inc();
    return true;
  }
  bool created = false;
  bool wrote = false;  // false when the fresh copy was already right
  absl::StatusOr<nlohmann::json> stored = options_.client->Update(
      absl::StrCat("/api/v1/namespaces/", ns, "/configmaps"), options_.configmap_name,
      [&](nlohmann::json* cm) -> absl::StatusOr<bool> {
        wrote = !in_place(*cm);
        if (!wrote) return false;
        created = cm->is_null();
        if (created) {
          *cm = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata", {{"name", options_.configmap_name}, {"namespace", ns}}}};
        }
        nlohmann::json& meta = (*cm)["metadata"];
        if (!meta.contains("labels") || !meta["labels"].is_object()) {
          meta["labels"] = nlohmann::json::object();
        }
        meta["labels"][kManagedBy] = kManager;
        // The whole data: a key someone added is dropped, so sidecars see our bundle
        // only.
        (*cm)["data"] = {{options_.key, bundle}};
        cm->erase("binaryData");
        return true;
      });
  if (!stored.ok()) {
    if (metrics::Counter* c = Syncs("error")) c->Inc();
    log::Warn("ca", "trust-root ConfigMap not written; retrying",
              {{"namespace", ns}, {"error", std::string(stored.status().message())}});
    return false;
  }
  if (!wrote) {
    if (metrics::Counter* c = Syncs("unchanged")) c->Inc();
    return true;
  }
  if (metrics::Counter* c = Syncs(created ? "created" : "updated")) c->Inc();
  written_.fetch_add(1);  // after the metric: a test that saw this sees the metric
  log::Info("ca",
            created ? "trust-root ConfigMap created" : "trust-root ConfigMap repaired",
            {{"namespace", ns}, {"configmap", options_.configmap_name}});
  return true;
}

void TrustRootPublisher::Run() {
  absl::Time next_resync = absl::Now() + options_.resync_interval;
  absl::Duration backoff = absl::Milliseconds(100);
  bool was_writer = false;
  std::string published;  // the bundle of the last check
  while (true) {
    std::set<std::string> work;
    const std::string bundle = options_.bundle();
    {
      absl::MutexLock lock(&mu_);
      const absl::Time until = std::min(next_resync, absl::Now() + options_.bundle_poll);
      while (!stop_ && dirty_.empty() && !resync_ && bundle == published &&
             absl::Now() < until) {
        wake_.WaitWithDeadline(&mu_, until);
      }
      if (stop_) return;
      if (absl::Now() >= next_resync) resync_ = true;
      // A new root (rotation): every ConfigMap gets the new bundle.
      if (bundle != published && !bundle.empty()) resync_ = true;
      // A new writer cannot know what the last one left undone: check everything.
      const bool writer = !options_.may_write || options_.may_write();
      if (writer && !was_writer) resync_ = true;
      was_writer = writer;
      const bool synced = namespaces_->synced() && configmaps_->synced();
      if (resync_ && synced) {
        for (const auto& [name, object] : namespaces_->List()) dirty_.insert(name);
        resync_ = false;
        published = bundle;
        next_resync = absl::Now() + options_.resync_interval;
      }
      // Until both copies are in, and while another replica writes, changes are
      // remembered, not acted on.
      if (!synced || !writer) {
        const absl::Time recheck = absl::Now() + absl::Milliseconds(100);
        while (!stop_ && absl::Now() < recheck) wake_.WaitWithDeadline(&mu_, recheck);
        continue;
      }
      work.swap(dirty_);
    }
    std::set<std::string> failed;
    for (const std::string& ns : work) {
      if (!Reconcile(ns, bundle)) failed.insert(ns);
    }
    if (failed.empty()) {
      backoff = absl::Milliseconds(100);
      continue;
    }
    absl::MutexLock lock(&mu_);
    dirty_.insert(failed.begin(), failed.end());
    const absl::Time until = absl::Now() + backoff;
    backoff = std::min(backoff * 2, absl::Seconds(10));
    while (!stop_ && absl::Now() < until) wake_.WaitWithDeadline(&mu_, until);
  }
}

void TrustRootPublisher::Start() {
  namespaces_->Start();
  configmaps_->Start();
  worker_ = std::thread([this] { Run(); });
}

void TrustRootPublisher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.Signal();
  }
  if (worker_.joinable()) worker_.join();
  namespaces_->Stop();
  configmaps_->Stop();
}

}  // namespace tandem::controlplane
