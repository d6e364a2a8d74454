#include "controlplane/kube/watch_event_parser.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controlplane/kube/json_depth.h"

namespace tandem::controlplane {
namespace {

std::string StringAt(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseKubeObject(absl::string_view json) {
  if (!JsonNestsWithin(json, kMaxApiJsonDepth)) {
    return absl::InvalidArgumentError(absl::StrCat("nested deeper than ", kMaxApiJsonDepth));
  }
  nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  return doc;
}

std::string MetadataField(const nlohmann::json& object, const char* field) {
  if (!object.is_object()) return "";
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  return StringAt(*meta, field);
}

absl::StatusOr<WatchEvent> ParseWatchEvent(absl::string_view json) {
  absl::StatusOr<nlohmann::json> doc = ParseKubeObject(json);
  if (!doc.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("watch event: ", doc.status().message()));
  }
  WatchEvent event;
  const std::string type = StringAt(*doc, "type");
  if (type == "ADDED") {
    event.type = WatchEvent::Type::kAdded;
  } else if (type == "MODIFIED") {
    event.type = WatchEvent::Type::kModified;
  } else if (type == "DELETED") {
    event.type = WatchEvent::Type::kDeleted;
  } else if (type == "BOOKMARK") {
    event.type = WatchEvent::Type::kBookmark;
  } else if (type == "ERROR") {
    event.type = WatchEvent::Type::kError;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("watch event: unknown type \"", type.substr(0, 32), "\""));
  }
  auto object = doc->find("object");
  if (object == doc->end() || !object->is_object()) {
    return absl::InvalidArgumentError("watch event: no \"object\" object");
  }
  event.object = std::move(*object);
  if (event.type == WatchEvent::Type::kError) {
    auto code = event.object.find("code");
    if (code != event.object.end() && code->is_number_integer()) {
      int64_t value = code->get<int64_t>();
      event.code = value >= 0 && value < 1000 ? static_cast<int>(value) : 0;
    }
    event.reason = StringAt(event.object, "reason");
    event.message = StringAt(event.object, "message");
    return event;
  }
  event.resource_version = MetadataField(event.object, "resourceVersion");
  if (event.resource_version.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("watch event ", type, ": no metadata.resourceVersion"));
  }
  if (event.type != WatchEvent::Type::kBookmark &&
      MetadataField(event.object, "name").empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("watch event ", type, ": no metadata.name"));
  }
  return event;
}

absl::Status WatchEventParser::Feed(absl::string_view bytes,
                                    std::vector<WatchEvent>* events) {
  if (failed_) return absl::InvalidArgumentError("watch stream: already failed");
  while (!bytes.empty()) {
    size_t lf = bytes.find('\n');
    size_t take = lf == absl::string_view::npos ? bytes.size() : lf;
    if (line_.size() + take > max_event_bytes_) {
      failed_ = true;
      return absl::InvalidArgumentError(
          absl::StrCat("watch stream: an event over ", max_event_bytes_, " bytes"));
    }
    line_.append(bytes.data(), take);
    if (lf == absl::string_view::npos) break;
    bytes.remove_prefix(lf + 1);
    absl::string_view line = absl::StripTrailingAsciiWhitespace(line_);
    if (!line.empty()) {
      absl::StatusOr<WatchEvent> event = ParseWatchEvent(line);
      if (!event.ok()) {
        failed_ = true;
        return event.status();
      }
      events->push_back(*std::move(event));
    }
    line_.clear();
  }
  return absl::OkStatus();
}

}  // namespace tandem::controlplane
