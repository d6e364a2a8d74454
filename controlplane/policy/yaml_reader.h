#ifndef TANDEM_CONTROLPLANE_POLICY_YAML_READER_H_
#define TANDEM_CONTROLPLANE_POLICY_YAML_READER_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::controlplane {

// Reads operator-written YAML (or JSON, a YAML subset) strictly: every refusal is
// kInvalidArgument "<file>:<line>: <field path>: <what>", so the operator can find
// the mistake. yaml-cpp reports errors by exception; Load() is the only place that
// catches them, and the accessors below never throw. A value type; use it from one
// thread at a time.
class YamlReader {
 public:
  explicit YamlReader(std::string file_name) : file_name_(std::move(file_name)) {}

  // Parses one document. A syntax error names its line.
  absl::StatusOr<YAML::Node> Load(absl::string_view text) const;

  // One key/value of a mapping, with where it was written.
  struct Field {
    std::string key;
    YAML::Node value;
    int line;  // 1-based line of the value (of the key when the value is empty)
  };
  // Returns the entries of the mapping `node` at `path` (written at `line`), refusing a
  // non-mapping, keys not in `allowed` and duplicate keys.
  absl::StatusOr<std::vector<Field>> Mapping(
      const YAML::Node& node, absl::string_view path, int line,
      std::initializer_list<absl::string_view> allowed) const;
  // Returns the elements of the sequence `node`, refusing anything else.
  absl::StatusOr<std::vector<YAML::Node>> Sequence(const YAML::Node& node,
                                                   absl::string_view path,
                                                   int line) const;
  // Scalars. String refuses a mapping, a sequence or null; Bool takes true/false.
  absl::StatusOr<std::string> String(const YAML::Node& node, absl::string_view path,
                                     int line) const;
  absl::StatusOr<uint32_t> Uint(const YAML::Node& node, absl::string_view path, int line,
                                uint32_t min, uint32_t max) const;
  absl::StatusOr<bool> Bool(const YAML::Node& node, absl::string_view path,
                            int line) const;

  // Returns the error "<file>:<line>: <path>: <what>".
  absl::Status Error(int line, absl::string_view path, absl::string_view what) const;
  // Returns the 1-based line of `node`, or `fallback` when it has no position.
  static int LineOf(const YAML::Node& node, int fallback);

 private:
  std::string file_name_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_POLICY_YAML_READER_H_
