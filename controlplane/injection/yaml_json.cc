#include "controlplane/injection/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <regex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

// Bounds the work one document may cause: aliases let a few bytes of YAML name an
// exponentially large tree ("billion laughs").
constexpr int64_t kMaxNodes = 1'000'000;

// Resolves a plain scalar the way YAML 1.2's core schema does. Infinity and NaN have
// no JSON form and stay strings.
Json ResolvePlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex kDecimal("[-+]?[0-9]+");
  static const std::regex kOctal("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.size() > 64) return s;  // no number is this long; keeps regex work bounded
  if (std::regex_match(s, kDecimal)) {
    int64_t i = 0;
    if (absl::SimpleAtoi(s, &i)) return i;
    uint64_t u = 0;
    if (absl::SimpleAtoi(s, &u)) return u;
    double d = 0;
    if (absl::SimpleAtod(s, &d)) return d;
    return s;
  }
  if (std::regex_match(s, kOctal) || std::regex_match(s, kHex)) {
    errno = 0;
    uint64_t u = std::strtoull(s.c_str() + 2, nullptr, s[1] == 'o' ? 8 : 16);
    if (errno == ERANGE) return s;
    return u;
  }
  if (std::regex_match(s, kFloat)) {
    double d = 0;
    if (absl::SimpleAtod(s, &d)) return d;
  }
  return s;
}

class Converter {
 public:
  explicit Converter(absl::string_view source) : source_(source) {}

  absl::StatusOr<Json> Convert(const YAML::Node& node, int depth) {
    if (depth > kMaxJsonDepth) {
      return Error(node, absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels"));
    }
    if (++nodes_ > kMaxNodes) {
      return Error(node, absl::StrCat("has more than ", kMaxNodes, " nodes"));
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        // "!" marks a quoted or block scalar; an explicit !!str tag also means string.
        if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") {
          return Json(node.Scalar());
        }
        return ResolvePlain(node.Scalar());
      case YAML::NodeType::Sequence: {
        Json array = Json::array();
        for (const YAML::Node& element : node) {
          absl::StatusOr<Json> value = Convert(element, depth + 1);
          if (!value.ok()) return value.status();
          array.push_back(*std::move(value));
        }
        return array;
      }
      case YAML::NodeType::Map: {
        Json object = Json::object();
        for (auto it = node.begin(); it != node.end(); ++it) {
          if (!it->first.IsScalar())
            return Error(it->first, "a mapping key is not a scalar");
          absl::StatusOr<Json> value = Convert(it->second, depth + 1);
          if (!value.ok()) return value.status();
          object[it->first.Scalar()] = *std::move(value);
        }
        return object;
      }
    }
    return nullptr;
  }

 private:
  absl::Status Error(const YAML::Node& node, absl::string_view what) const {
    YAML::Mark mark = node.Mark();
    return absl::InvalidArgumentError(
        mark.is_null() ? absl::StrCat(source_, ": ", what)
                       : absl::StrCat(source_, ":", mark.line + 1, ": ", what));
  }

  absl::string_view source_;
  int64_t nodes_ = 0;
};

void Emit(const Json& value, YAML::Emitter& out) {
  switch (value.type()) {
    case Json::value_t::object:
      if (value.empty()) out << YAML::Flow;  // "{}" on the key's line
      out << YAML::BeginMap;
      for (const auto& [key, element] : value.items()) {
        out << YAML::Key;
        Emit(Json(key), out);
        out << YAML::Value;
        Emit(element, out);
      }
      out << YAML::EndMap;
      return;
    case Json::value_t::array:
      if (value.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const Json& element : value) Emit(element, out);
      out << YAML::EndSeq;
      return;
    case Json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      bool multi_line = s.find('\n') != std::string::npos;
      if (multi_line && s.front() != ' ' && s.front() != '\n' &&
          s.find_first_of("\r\t") == std::string::npos &&
          s.find(" \n") == std::string::npos) {
        out << YAML::Literal << s;
      } else if (multi_line || !ResolvePlain(s).is_string()) {
        // Would read back as a number, bool or null (or spans lines): quote it.
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      return;
    }
    case Json::value_t::boolean:
      out << value.get<bool>();
      return;
    case Json::value_t::number_integer:
      out << value.get<int64_t>();
      return;
    case Json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      return;
    case Json::value_t::number_float:
      out << value.get<double>();
      return;
    default:
      out << YAML::Null;
      return;
  }
}

}  // namespace

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(absl::string_view text,
                                                     absl::string_view source) {
  std::vector<YAML::Node> nodes;
  // yaml-cpp reports errors by exception; this is the one place they are caught.
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        e.mark.is_null() ? absl::StrCat(source, ": ", e.msg)
                         : absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  std::vector<Json> documents;
  Converter converter(source);
  for (const YAML::Node& node : nodes) {
    absl::StatusOr<Json> document = converter.Convert(node, 0);
    if (!document.ok()) return document.status();
    if (!document->is_null()) documents.push_back(*std::move(document));
  }
  return documents;
}

absl::StatusOr<std::string> EmitYamlDocument(const Json& document) {
  if (DeeperThan(document, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the object nests deeper than ", kMaxJsonDepth, " levels"));
  }
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  out.SetMapFormat(YAML::Block);
  out.SetDoublePrecision(17);
  Emit(document, out);
  if (!out.good()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write the object as YAML: ", out.GetLastError()));
  }
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return absl::InvalidArgumentError("is not JSON");
  if (DeeperThan(value, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels"));
  }
  return value;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool DeeperThan(const Json& value, int max_depth) {
  std::vector<std::pair<const Json*, int>> stack = {{&value, 0}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (depth > max_depth) return true;
    if (node->is_structured()) {
      for (const Json& child : *node) stack.push_back({&child, depth + 1});
    }
  }
  return false;
}

}  // namespace tandem::injection
