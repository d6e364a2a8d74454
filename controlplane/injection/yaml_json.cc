#include "controlplane/injection/yaml_json.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

// Bounds the work one stream may cause: aliases let a few bytes of YAML name an
// exponentially large tree ("billion laughs"), or repeat one long scalar thousands of
// times. A node costs one unit plus the bytes of its scalar or key. Without aliases
// every node takes at least one byte of the text and every scalar byte comes from one,
// so a bound proportional to the text's size refuses only alias growth.
int64_t MaxExpansion(size_t text_size) {
  return 2 * static_cast<int64_t>(text_size) + 1024;
}

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

// Builds JSON from yaml-cpp's parse events rather than from YAML::LoadAll's nodes:
// yaml-cpp 0.7's LoadAll loops forever on some malformed streams, making empty
// documents without end (jbeder/yaml-cpp#1319; fuzz_kube_inject_yaml found 10-byte
// inputs). Every event spends from a budget proportional to the text, which ends such
// loops and alias bombs alike: a refusal is thrown out of the parser and caught in
// ParseYamlDocuments, the only way to stop yaml-cpp midway.
class JsonBuilder : public YAML::EventHandler {
 public:
  struct Refusal {
    YAML::Mark mark;
    std::string what;
  };

  explicit JsonBuilder(int64_t budget) : budget_(budget) {}

  std::vector<Json> TakeDocuments() { return std::move(documents_); }

  void OnDocumentStart(const YAML::Mark& mark) override {
    Spend(mark, 1);
    anchors_.clear();  // yaml-cpp numbers anchors afresh in every document
  }

  void OnDocumentEnd() override {
    if (!root_.is_null()) documents_.push_back(std::move(root_));
    root_ = nullptr;
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Add(mark, anchor, {nullptr, 1, 0});
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (anchor >= anchors_.size() || !anchors_[anchor].has_value()) {
      throw Refusal{mark, "an alias names a node that contains it"};
    }
    const Built& named = *anchors_[anchor];
    Add(mark, YAML::NullAnchor, named);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!IsUtf8(value)) throw Refusal{mark, "a scalar is not valid UTF-8"};
    if (!frames_.empty() && frames_.back().value.is_object() && !frames_.back().key) {
      Spend(mark, Cost(value) - 1);  // a key's node is its value's
      frames_.back().key = value;    // keys stay text, whatever they look like
      frames_.back().cost += Cost(value) - 1;
      if (anchor != YAML::NullAnchor) Remember(anchor, {Json(value), Cost(value), 0});
      return;
    }
    // "!" marks a quoted or block scalar; an explicit !!str tag also means string.
    bool text = tag == "!" || tag == "tag:yaml.org,2002:str";
    Add(mark, anchor, {text ? Json(value) : ResolvePlain(value), Cost(value), 0});
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor, Json::array());
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor, Json::object());
  }
  void OnMapEnd() override { Close(); }

 private:
  // A finished node: its value, what it cost (nodes plus scalar bytes, spent again by
  // every alias to it) and how many levels it nests below itself.
  struct Built {
    Json value;
    int64_t cost = 0;
    int height = 0;
  };
  struct Frame {
    YAML::Mark mark;
    YAML::anchor_t anchor;
    Json value;
    int64_t cost = 1;
    int height = 0;
    std::optional<std::string> key;  // a mapping's key waiting for its value
  };

  static int64_t Cost(const std::string& scalar) {
    return 1 + static_cast<int64_t>(scalar.size());
  }

  void Spend(const YAML::Mark& mark, int64_t cost) {
    spent_ += cost;
    if (spent_ > budget_) {
      throw Refusal{mark, "aliases expand the stream to more than twice its size"};
    }
  }

  // Depth is counted the way kMaxJsonDepth means it: the root is at 0.
  void CheckDepth(const YAML::Mark& mark, int height) const {
    if (static_cast<int64_t>(frames_.size()) + height > kMaxJsonDepth) {
      throw Refusal{mark, absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels")};
    }
  }

  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, Json empty) {
    RefuseNonScalarKey(mark);
    CheckDepth(mark, 0);
    Spend(mark, 1);
    frames_.push_back({mark, anchor, std::move(empty), 1, 0, std::nullopt});
  }

  void Close() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    // The cost was spent as the children came; only the parent's total grows here.
    Place(frame.anchor, {std::move(frame.value), frame.cost, frame.height});
  }

  // A scalar, null or alias: spends its cost, then takes its place.
  void Add(const YAML::Mark& mark, YAML::anchor_t anchor, Built built) {
    RefuseNonScalarKey(mark);
    CheckDepth(mark, built.height);
    Spend(mark, built.cost);
    Place(anchor, std::move(built));
  }

  void Place(YAML::anchor_t anchor, Built built) {
    if (anchor != YAML::NullAnchor) Remember(anchor, built);
    if (frames_.empty()) {
      root_ = std::move(built.value);
      return;
    }
    Frame& parent = frames_.back();
    parent.cost += built.cost;
    parent.height = std::max(parent.height, built.height + 1);
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(built.value));
    } else {
      parent.value[*parent.key] = std::move(built.value);
      parent.key.reset();
    }
  }

  void Remember(YAML::anchor_t anchor, const Built& built) {
    if (anchor >= anchors_.size()) anchors_.resize(anchor + 1);
    anchors_[anchor] = built;
  }

  // Kubernetes objects are JSON: a mapping's keys are strings.
  void RefuseNonScalarKey(const YAML::Mark& mark) const {
    if (!frames_.empty() && frames_.back().value.is_object() && !frames_.back().key) {
      throw Refusal{mark, "a mapping key is not a scalar"};
    }
  }

  const int64_t budget_;
  int64_t spent_ = 0;
  std::vector<Frame> frames_;
  std::vector<std::optional<Built>> anchors_;  // by yaml-cpp's anchor number
  Json root_;
  std::vector<Json> documents_;
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

absl::Status Refused(absl::string_view source, const YAML::Mark& mark,
                     absl::string_view what) {
  return absl::InvalidArgumentError(
      mark.is_null() ? absl::StrCat(source, ": ", what)
                     : absl::StrCat(source, ":", mark.line + 1, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(absl::string_view text,
                                                     absl::string_view source) {
  // YAML streams are printable UTF-8 (YAML 1.2, 5.1): checked first, so that the
  // refusal names the byte rather than whatever yaml-cpp makes of it.
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
  std::istringstream in(bytes);
  JsonBuilder builder(MaxExpansion(text.size()));
  // yaml-cpp reports errors by exception; this is the one place they are caught.
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YAML::Exception& e) {
    return Refused(source, e.mark, e.msg);
  } catch (const JsonBuilder::Refusal& refusal) {
    return Refused(source, refusal.mark, refusal.what);
  }
  return builder.TakeDocuments();
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
