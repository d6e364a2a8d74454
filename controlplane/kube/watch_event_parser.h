#ifndef TANDEM_CONTROLPLANE_KUBE_WATCH_EVENT_PARSER_H_
#define TANDEM_CONTROLPLANE_KUBE_WATCH_EVENT_PARSER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tandem::controlplane {

// One event of a Kubernetes watch stream (meta/v1 WatchEvent): {"type": ..., "object":
// ...}. ADDED, MODIFIED and DELETED carry the object; BOOKMARK an object with only
// metadata.resourceVersion; ERROR a Status (code 410, reason "Expired" or "Gone", when
// the resourceVersion the watch started from is too old).
struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  nlohmann::json object;         // the object (or the Status of an ERROR)
  std::string resource_version;  // object.metadata.resourceVersion; "" for ERROR
  // ERROR only: the Status's code, reason and message.
  int code = 0;
  std::string reason;
  std::string message;
};

// Parses one watch event. Untrusted input: kInvalidArgument naming what is wrong for
// anything but a JSON object (nested at most 64 deep) with a known "type" and an
// "object" object, where every type but ERROR has a non-empty string
// metadata.resourceVersion and ADDED/MODIFIED/DELETED a metadata.name. Never throws.
absl::StatusOr<WatchEvent> ParseWatchEvent(absl::string_view json);

// Splits a watch response body, fed in pieces of any size, into events: the API
// server writes one JSON object per line. A line longer than `max_event_bytes` or
// an event ParseWatchEvent refuses is an error, after which the stream must be
// dropped. Not thread-safe (one stream, one thread).
class WatchEventParser {
 public:
  explicit WatchEventParser(size_t max_event_bytes = size_t{4} << 20)
      : max_event_bytes_(max_event_bytes) {}

  // Appends every event completed by `bytes` to *events.
  absl::Status Feed(absl::string_view bytes, std::vector<WatchEvent>* events);

 private:
  const size_t max_event_bytes_;
  std::string line_;  // the incomplete last line
  bool failed_ = false;
};

// Parses a JSON object from the API server (untrusted): kInvalidArgument for anything
// else, or nesting deeper than 64 levels. Never throws.
absl::StatusOr<nlohmann::json> ParseKubeObject(absl::string_view json);
// Returns the string at object.metadata.<field>, or "" when absent or not a string.
std::string MetadataField(const nlohmann::json& object, const char* field);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_WATCH_EVENT_PARSER_H_
