#include "controlplane/injection/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

// Bounds the work one stream may cause: aliases let a few bytes of YAML name an
// exponentially large tree ("billion laughs"). Without aliases every node takes at least
// one byte of the text, so a bound proportional to its size refuses only alias growth.
int64_t MaxNodes(size_t text_size) { return 2 * static_cast<int64_t>(text_size) + 1024; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Consumes [0-9]+ from s[*i]; false if there is none.
bool Digits(const std::string& s, size_t* i) {
  size_t start = *i;
  while (*i < s.size() && IsDigit(s[*i])) ++*i;
  return *i > start;
}

// [-+]?[0-9]+
bool IsDecimal(const std::string& s) {
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  return Digits(s, &i) && i == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(const std::string& s) {
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!Digits(s, &i)) return false;
  } else {
    if (!Digits(s, &i)) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      Digits(s, &i);
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!Digits(s, &i)) return false;
  }
  return i == s.size();
}

// 0o[0-7]+ or 0x[0-9a-fA-F]+
bool IsOctalOrHex(const std::string& s) {
  if (s.size() < 3 || s[0] != '0' || (s[1] != 'o' && s[1] != 'x')) return false;
  for (size_t i = 2; i < s.size(); ++i) {
    char c = s[i];
    bool ok = s[1] == 'o'
                  ? (c >= '0' && c <= '7')
                  : (IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    if (!ok) return false;
  }
  return true;
}

// Resolves a plain scalar the way YAML 1.2's core schema does. Infinity and NaN have
// no JSON form and stay strings.
Json ResolvePlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.size() > 64) return s;  // no number is this long
  if (IsDecimal(s)) {
    int64_t i = 0;
    if (absl::SimpleAtoi(s, &i)) return i;
    uint64_t u = 0;
    if (absl::SimpleAtoi(s, &u)) return u;
    double d = 0;
    if (absl::SimpleAtod(s, &d)) return d;
    return s;
  }
  if (IsOctalOrHex(s)) {
    errno = 0;
    uint64_t u = std::strtoull(s.c_str() + 2, nullptr, s[1] == 'o' ? 8 : 16);
    if (errno == ERANGE) return s;
    return u;
  }
  if (IsFloat(s)) {
    double d = 0;
    if (absl::SimpleAtod(s, &d)) return d;
  }
  return s;
}

bool HasControlCharacter(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// True when `s` survives a "|" block scalar unchanged: one final newline (clip
// chomping keeps exactly one), no leading blank or space (the first line sets the
// indentation), no trailing spaces on a line, only printable characters.
bool ReadsBackAsLiteral(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') return false;
  if (s.front() == ' ' || s.front() == '\n' || s.find(" \n") != std::string::npos) {
    return false;
  }
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  }
  return true;
}

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF). Kubernetes objects are UTF-8; other bytes would not survive the emitter.
bool IsUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int extra = c < 0x80           ? 0
                : (c >> 5) == 0x6  ? 1
                : (c >> 4) == 0xe  ? 2
                : (c >> 3) == 0x1e ? 3
                                   : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0)) return false;
    uint32_t cp = extra == 0 ? c : c & (0x3f >> extra);
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

class Converter {
 public:
  Converter(absl::string_view source, int64_t max_nodes)
      : source_(source), max_nodes_(max_nodes) {}

  absl::StatusOr<Json> Convert(const YAML::Node& node, int depth) {
    if (depth > kMaxJsonDepth) {
      return Error(node, absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels"));
    }
    if (++nodes_ > max_nodes_) {
      return Error(
          node, absl::StrCat("aliases expand the stream beyond ", max_nodes_, " nodes"));
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        if (!IsUtf8(node.Scalar())) return Error(node, "a scalar is not valid UTF-8");
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
          if (!it->first.IsScalar()) {
            return Error(it->first, "a mapping key is not a scalar");
          }
          if (!IsUtf8(it->first.Scalar()))
            return Error(it->first, "a key is not valid UTF-8");
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
  const int64_t max_nodes_;
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
      if (multi_line && ReadsBackAsLiteral(s)) {
        out << YAML::Literal << s;
      } else if (multi_line || HasControlCharacter(s) || !ResolvePlain(s).is_string()) {
        // Would read back as a number, bool or null, or not at all (yaml-cpp writes a
        // lone carriage return plain): quote it.
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
  // YAML streams are printable UTF-8 (YAML 1.2, 5.1). Checked before yaml-cpp sees the
  // bytes: with a stray control byte its LoadAll can produce empty documents without
  // end (found by fuzz_kube_inject_yaml: 18 bytes made it allocate gigabytes).
  const std::string bytes(text);
  if (!IsUtf8(bytes))
    return absl::InvalidArgumentError(absl::StrCat(source, ": not UTF-8"));
  int line = 1;
  for (unsigned char c : bytes) {
    if (c == '\n') ++line;
    // DEL (0x7f) is let through: yaml-cpp's emitter writes it raw, and reads it back.
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line, ": control character 0x", absl::Hex(c, absl::kZeroPad2),
          " (YAML allows only printable characters)"));
    }
  }
  std::vector<YAML::Node> nodes;
  // yaml-cpp reports errors by exception; this is the one place they are caught.
  try {
    nodes = YAML::LoadAll(bytes);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        e.mark.is_null() ? absl::StrCat(source, ": ", e.msg)
                         : absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  std::vector<Json> documents;
  Converter converter(source, MaxNodes(text.size()));
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
