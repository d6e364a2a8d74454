#ifndef TANDEM_CONTROLPLANE_INJECTION_YAML_JSON_H_
#define TANDEM_CONTROLPLANE_INJECTION_YAML_JSON_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::injection {

// Kubernetes objects are JSON trees whatever the door: the webhook gets JSON, kube-inject
// reads YAML. One tree type (key order kept, so kube-inject's output reads like its
// input).
using Json = nlohmann::ordered_json;

// Refuses trees deeper than this: the diff, the dump and the emitter recurse.
inline constexpr int kMaxJsonDepth = 64;

// Parses every document of a YAML stream (empty documents are dropped) into JSON.
// Plain scalars resolve like YAML 1.2's core schema (null, bool, int, float); quoted
// and block scalars stay strings. Refusals are kInvalidArgument "<source>:<line>: ...":
// a syntax error, a non-scalar key, nesting deeper than kMaxJsonDepth, aliases that
// expand the stream to more than twice its size (in nodes plus scalar bytes). Never
// throws.
absl::StatusOr<std::vector<Json>> ParseYamlDocuments(absl::string_view text,
                                                     absl::string_view source);

// Emits one JSON tree as a block-style YAML document (no "---"), quoting every string
// that would read back as something else. kInvalidArgument when the tree cannot be
// written as YAML (invalid UTF-8, too deep).
absl::StatusOr<std::string> EmitYamlDocument(const Json& document);

// Parses untrusted JSON without exceptions; kInvalidArgument "is not JSON" or "nests
// deeper than <kMaxJsonDepth> levels" (to follow the name of what was parsed).
absl::StatusOr<Json> ParseJson(absl::string_view text);

// Dumps compactly; invalid UTF-8 in strings is replaced rather than thrown about.
std::string DumpJson(const Json& value);

// True when `value` nests deeper than `max_depth` (iterative: safe on any tree).
bool DeeperThan(const Json& value, int max_depth);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_YAML_JSON_H_
