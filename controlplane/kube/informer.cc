#include "controlplane/kube/informer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/stream_backoff.h"

namespace tandem::controlplane {

std::string Informer::KeyOf(const nlohmann::json& object) {
  std::string ns = MetadataField(object, "namespace");
  std::string name = MetadataField(object, "name");
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

Informer::Informer(Options options) : options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

std::optional<nlohmann::json> Informer::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, nlohmann::json> Informer::List() const {
  absl::MutexLock lock(&mu_);
  return objects_;
}

std::string Informer::resource_version() const {
  absl::MutexLock lock(&mu_);
  return resource_version_;
}

void Informer::Apply(EventType type, const nlohmann::json& object) {
  {
    absl::MutexLock lock(&mu_);
    if (type == EventType::kDeleted) {
      objects_.erase(KeyOf(object));
    } else {
      objects_[KeyOf(object)] = object;
    }
  }
  if (options_.on_event) options_.on_event(type, object);
}

absl::Status Informer::Relist() {
  absl::StatusOr<KubeClient::ObjectList> list =
      options_.client->List(options_.collection);
  if (!list.ok()) return list.status();
  std::map<std::string, nlohmann::json> fresh;
  for (nlohmann::json& item : list->items) {
    // The key first: json's operator= takes its argument by value, so a move in the
    // same statement would empty `item` before KeyOf reads it.
    std::string key = KeyOf(item);
    fresh[key] = std::move(item);
  }
  std::vector<std::pair<EventType, nlohmann::json>> changes;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, object] : objects_) {
      if (!fresh.contains(key)) changes.emplace_back(EventType::kDeleted, object);
    }
    for (const auto& [key, object] : fresh) {
      auto old = objects_.find(key);
      if (old == objects_.end()) {
        changes.emplace_back(EventType::kAdded, object);
      } else if (MetadataField(old->second, "resourceVersion") !=
                 MetadataField(object, "resourceVersion")) {
        changes.emplace_back(EventType::kModified, object);
      }
    }
    objects_ = std::move(fresh);
    resource_version_ = list->resource_version;
  }
  lists_.fetch_add(1);
  synced_.store(true);
  if (options_.on_event) {
    for (const auto& [type, object] : changes) options_.on_event(type, object);
  }
  return absl::OkStatus();
}

absl::Status Informer::WatchOnce() {
  return options_.client->Watch(
      options_.collection, resource_version(), options_.watch_timeout, &stopping_,
      [this](const WatchEvent& event) {
        {
          absl::MutexLock lock(&mu_);
          resource_version_ = event.resource_version;
        }
        switch (event.type) {
          case WatchEvent::Type::kAdded:
            Apply(EventType::kAdded, event.object);
            break;
          case WatchEvent::Type::kModified:
            Apply(EventType::kModified, event.object);
            break;
          case WatchEvent::Type::kDeleted:
            Apply(EventType::kDeleted, event.object);
            break;
          case WatchEvent::Type::kBookmark:  // only moves the resourceVersion on
          case WatchEvent::Type::kError:     // never passed on (KubeClient::Watch)
            break;
        }
        return true;
      });
}

void Informer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Informer::Run() {
  bool need_list = true;
  RunStreamWithBackoff(
      stopping_,
      [&] {
        if (need_list) {
          if (absl::Status s = Relist(); !s.ok()) {
            log::Warn("ca", "Kubernetes list failed; retrying",
                      {{"collection", options_.collection},
                       {"error", std::string(s.message())}});
            return false;
          }
          need_list = false;
        }
        absl::Status watched = WatchOnce();
        if (watched.ok()) return true;  // the server ended it: resume at once
        if (watched.code() == absl::StatusCode::kOutOfRange) {
          // Our resourceVersion is too old: only a fresh LIST can tell what we missed.
          log::Info("ca", "Kubernetes watch expired; listing again",
                    {{"collection", options_.collection}});
          need_list = true;
          return true;
        }
        log::Warn("ca", "Kubernetes watch failed; retrying",
                  {{"collection", options_.collection},
                   {"error", std::string(watched.message())}});
        return false;
      },
      options_.max_backoff);
}

void Informer::Stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace tandem::controlplane
