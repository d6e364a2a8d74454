#include "controlplane/policy/yaml_reader.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::controlplane {

absl::StatusOr<YAML::Node> YamlReader::Load(absl::string_view text) const {
  // yaml-cpp throws on syntax errors; this is the one boundary where they are caught.
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error(e.mark.is_null() ? 0 : e.mark.line + 1, "(document)", e.msg);
  }
}

absl::StatusOr<std::vector<YamlReader::Field>> YamlReader::Mapping(
    const YAML::Node& node, absl::string_view path, int line,
    std::initializer_list<absl::string_view> allowed) const {
  if (!node.IsMap()) {
    return Error(
        LineOf(node, line), path,
        absl::StrCat("expected a mapping with keys ", absl::StrJoin(allowed, ", ")));
  }
  std::vector<Field> fields;
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    int key_line = LineOf(it->first, line);
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    std::string where = path.empty() ? key : absl::StrCat(path, ".", key);
    bool known = false;
    for (absl::string_view a : allowed) known |= a == key;
    if (!known) {
      return Error(
          key_line, where,
          absl::StrCat("unknown key (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
    if (!seen.insert(key).second) return Error(key_line, where, "duplicate key");
    fields.push_back({key, it->second, LineOf(it->second, key_line)});
  }
  return fields;
}

absl::StatusOr<std::vector<YAML::Node>> YamlReader::Sequence(const YAML::Node& node,
                                                             absl::string_view path,
                                                             int line) const {
  if (!node.IsSequence()) return Error(LineOf(node, line), path, "expected a list");
  std::vector<YAML::Node> elements;
  for (const YAML::Node& element : node) elements.push_back(element);
  return elements;
}

absl::StatusOr<std::string> YamlReader::String(const YAML::Node& node,
                                               absl::string_view path, int line) const {
  if (!node.IsScalar()) return Error(LineOf(node, line), path, "expected a string");
  return node.Scalar();
}

absl::StatusOr<uint32_t> YamlReader::Uint(const YAML::Node& node, absl::string_view path,
                                          int line, uint32_t min, uint32_t max) const {
  absl::StatusOr<std::string> text = String(node, path, line);
  if (!text.ok()) return text.status();
  uint32_t value = 0;
  if (!absl::SimpleAtoi(*text, &value) || value < min || value > max ||
      text->find_first_not_of("0123456789") != std::string::npos) {
    return Error(LineOf(node, line), path,
                 absl::StrCat("\"", *text, "\" is not an integer in ", min, "..", max));
  }
  return value;
}

absl::StatusOr<bool> YamlReader::Bool(const YAML::Node& node, absl::string_view path,
                                      int line) const {
  absl::StatusOr<std::string> text = String(node, path, line);
  if (!text.ok()) return text.status();
  if (*text == "true") return true;
  if (*text == "false") return false;
  return Error(LineOf(node, line), path,
               absl::StrCat("\"", *text, "\" is not true or false"));
}

absl::Status YamlReader::Error(int line, absl::string_view path,
                               absl::string_view what) const {
  return absl::InvalidArgumentError(
      absl::StrCat(file_name_, ":", line, ": ", path, ": ", what));
}

int YamlReader::LineOf(const YAML::Node& node, int fallback) {
  if (!node.IsDefined() || node.Mark().is_null()) return fallback;
  return node.Mark().line + 1;
}

}  // namespace tandem::controlplane
