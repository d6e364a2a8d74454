#include "agent/app_probe_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tandem::agent {
namespace {

using Json = nlohmann::json;

// The format nests five deep (table, probe, httpGet, httpHeaders, header); anything
// deeper is not ours and is refused before a DOM is built for it.
constexpr int kMaxDepth = 5;
constexpr absl::string_view kPathPrefix = "/app-health/";

// A first pass over the bytes that the DOM parser cannot make: it reports where the
// JSON breaks (the DOM parser without exceptions only says that it does), refuses
// duplicate keys (the DOM would keep the last silently) and bounds the depth.
class Prescan : public nlohmann::json_sax<Json> {
 public:
  const std::string& error() const { return error_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Enter(); }
  bool end_object() override { return Leave(); }
  bool start_array(std::size_t) override { return Enter(); }
  bool end_array() override { return Leave(); }
  bool key(string_t& key) override {
    if (keys_.back().insert(key).second) return true;
    error_ = absl::StrCat("duplicate key \"", absl::CHexEscape(key), "\"");
    return false;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, ...".
    absl::string_view what = e.what();
    if (size_t end = what.find("] "); end != absl::string_view::npos) {
      what.remove_prefix(end + 2);
    }
    error_ = absl::StrCat("not JSON: ", what);
    return false;
  }

 private:
  bool Enter() {
    if (keys_.size() == kMaxDepth) {
      error_ = absl::StrCat("nested deeper than ", kMaxDepth, " levels");
      return false;
    }
    keys_.emplace_back();
    return true;
  }
  bool Leave() {
    keys_.pop_back();
    return true;
  }

  std::vector<std::set<std::string>> keys_;  // per open object or array
  std::string error_;
};

// Builds the refusals of one probe, each naming its path and field.
class Refuser {
 public:
  explicit Refuser(absl::string_view path) : path_(absl::CHexEscape(path)) {}
  absl::Status operator()(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", path_, "\": ", field, field.empty() ? "" : ": ", what));
  }

 private:
  std::string path_;
};

absl::Status CheckFields(const Json& object, absl::string_view prefix,
                         std::initializer_list<absl::string_view> known,
                         const Refuser& refuse) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return refuse(absl::StrCat(prefix, absl::CHexEscape(key)), "unknown field");
    }
  }
  return absl::OkStatus();
}

// Sets *out from an integer field within [min, max]; `fallback` when absent (or null),
// or a refusal when there is none.
absl::Status ReadInt(const Json& object, absl::string_view key, absl::string_view field,
                     int64_t min, int64_t max, std::optional<int64_t> fallback,
                     const Refuser& refuse, int64_t* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (!fallback) return refuse(field, "required");
    *out = *fallback;
    return absl::OkStatus();
  }
  std::string range = absl::StrCat("must be an integer ", min, "..", max);
  if (it->is_number_unsigned()) {
    uint64_t value = it->get<uint64_t>();
    if (value > static_cast<uint64_t>(max)) return refuse(field, range);
    *out = static_cast<int64_t>(value);
  } else if (it->is_number_integer()) {
    *out = it->get<int64_t>();
  } else {
    return refuse(field, range);
  }
  if (*out < min || *out > max) return refuse(field, range);
  return absl::OkStatus();
}

// Sets *out from a string field, or leaves it when absent (or null).
absl::Status ReadString(const Json& object, absl::string_view key,
                        absl::string_view field, const Refuser& refuse,
                        std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return refuse(field, "must be a string");
  *out = it->get_ref<const std::string&>();
  return absl::OkStatus();
}

absl::Status ReadPort(const Json& handler, absl::string_view prefix,
                      const Refuser& refuse, uint16_t* port) {
  int64_t value = 0;
  if (absl::Status s = ReadInt(handler, "port", absl::StrCat(prefix, "port"), 1, 65535,
                               std::nullopt, refuse, &value);
      !s.ok()) {
    return s;
  }
  *port = static_cast<uint16_t>(value);
  return absl::OkStatus();
}

// The kubelet connects to `host` (the pod IP when empty). The agent connects over
// loopback, and resolves no names: a lookup has no deadline it could keep.
absl::Status ReadHost(const Json& handler, absl::string_view prefix,
                      const Refuser& refuse, std::string* host) {
  std::string field = absl::StrCat(prefix, "host");
  std::string value;
  if (absl::Status s = ReadString(handler, "host", field, refuse, &value); !s.ok()) {
    return s;
  }
  if (value.empty() || value == "localhost") {
    *host = "127.0.0.1";
    return absl::OkStatus();
  }
  if (value.size() > 2 && value.front() == '[' && value.back() == ']') {
    value = value.substr(1, value.size() - 2);
  }
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, value.c_str(), &v4) != 1 &&
      inet_pton(AF_INET6, value.c_str(), &v6) != 1) {
    return refuse(field, "must be empty or an IP address (names are not resolved)");
  }
  *host = value;
  return absl::OkStatus();
}

bool IsHttpToken(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
  });
}

absl::Status ReadHttpGet(const Json& get, const Refuser& refuse, AppProbeSpec* spec) {
  if (absl::Status s = CheckFields(
          get, "httpGet.", {"path", "port", "scheme", "host", "httpHeaders"}, refuse);
      !s.ok()) {
    return s;
  }
  spec->kind = AppProbeSpec::Kind::kHttpGet;
  if (absl::Status s = ReadPort(get, "httpGet.", refuse, &spec->port); !s.ok()) return s;
  if (absl::Status s = ReadHost(get, "httpGet.", refuse, &spec->host); !s.ok()) return s;

  std::string path;
  if (absl::Status s = ReadString(get, "path", "httpGet.path", refuse, &path); !s.ok()) {
    return s;
  }
  // As the kubelet's URL does: the fragment is not sent, a relative path gets its '/'.
  path = path.substr(0, path.find('#'));
  if (path.empty() || path[0] != '/') path.insert(0, "/");
  if (std::any_of(path.begin(), path.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 ||
               static_cast<unsigned char>(c) >= 0x7f;
      })) {
    return refuse("httpGet.path", "must be printable ASCII without spaces");
  }
  spec->path = path;

  std::string scheme = "HTTP";
  if (absl::Status s = ReadString(get, "scheme", "httpGet.scheme", refuse, &scheme);
      !s.ok()) {
    return s;
  }
  if (scheme != "HTTP" && scheme != "HTTPS") {
    return refuse("httpGet.scheme", "must be HTTP or HTTPS");
  }
  spec->https = scheme == "HTTPS";

  auto headers = get.find("httpHeaders");
  if (headers == get.end() || headers->is_null()) return absl::OkStatus();
  if (!headers->is_array()) return refuse("httpGet.httpHeaders", "must be an array");
  for (size_t i = 0; i < headers->size(); ++i) {
    const Json& header = (*headers)[i];
    std::string field = absl::StrCat("httpGet.httpHeaders[", i, "]");
    if (!header.is_object()) return refuse(field, "must be an object");
    if (absl::Status s = CheckFields(header, field + ".", {"name", "value"}, refuse);
        !s.ok()) {
      return s;
    }
    std::string name, value;
    if (absl::Status s = ReadString(header, "name", field + ".name", refuse, &name);
        !s.ok()) {
      return s;
    }
    if (!IsHttpToken(name)) return refuse(field + ".name", "must be an HTTP token");
    if (absl::Status s = ReadString(header, "value", field + ".value", refuse, &value);
        !s.ok()) {
      return s;
    }
    // A line break would let the pod spec write headers (or requests) of its own.
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return refuse(field + ".value", "must not hold CR, LF or NUL");
    }
    spec->headers.emplace_back(std::move(name), std::move(value));
  }
  return absl::OkStatus();
}

absl::Status ReadTcpSocket(const Json& tcp, const Refuser& refuse, AppProbeSpec* spec) {
  if (absl::Status s = CheckFields(tcp, "tcpSocket.", {"port", "host"}, refuse);
      !s.ok()) {
    return s;
  }
  spec->kind = AppProbeSpec::Kind::kTcpSocket;
  if (absl::Status s = ReadPort(tcp, "tcpSocket.", refuse, &spec->port); !s.ok()) {
    return s;
  }
  return ReadHost(tcp, "tcpSocket.", refuse, &spec->host);
}

absl::Status ReadGrpc(const Json& grpc, const Refuser& refuse, AppProbeSpec* spec) {
  if (absl::Status s = CheckFields(grpc, "grpc.", {"port", "service"}, refuse); !s.ok()) {
    return s;
  }
  spec->kind = AppProbeSpec::Kind::kGrpc;
  // The kubelet dials the pod IP; the agent, loopback (its traffic is not captured).
  spec->host = "127.0.0.1";
  if (absl::Status s = ReadPort(grpc, "grpc.", refuse, &spec->port); !s.ok()) return s;
  return ReadString(grpc, "service", "grpc.service", refuse, &spec->grpc_service);
}

// Splits "/app-health/<container>/<probe>"; false when the path is not of that form
// (the container a DNS-1123 label, as Kubernetes requires of container names).
bool SplitPath(absl::string_view path, AppProbeSpec* spec) {
  if (path.substr(0, kPathPrefix.size()) != kPathPrefix) return false;
  path.remove_prefix(kPathPrefix.size());
  size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return false;
  absl::string_view container = path.substr(0, slash);
  absl::string_view probe = path.substr(slash + 1);
  bool label_ok = !container.empty() && container.size() <= 63 &&
                  container.front() != '-' && container.back() != '-' &&
                  std::all_of(container.begin(), container.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                  });
  if (!label_ok || (probe != "livez" && probe != "readyz" && probe != "startupz")) {
    return false;
  }
  spec->container = std::string(container);
  spec->probe = std::string(probe);
  return true;
}

absl::StatusOr<AppProbeSpec> ReadProbe(const std::string& path, const Json& probe) {
  Refuser refuse(path);
  AppProbeSpec spec;
  if (!SplitPath(path, &spec)) {
    return refuse("", "not a path /app-health/<container>/<livez|readyz|startupz>");
  }
  if (!probe.is_object()) return refuse("", "must be an object");
  if (absl::Status s = CheckFields(
          probe, "", {"httpGet", "tcpSocket", "grpc", "timeoutSeconds"}, refuse);
      !s.ok()) {
    return s;
  }
  int handlers = 0;
  for (const char* kind : {"httpGet", "tcpSocket", "grpc"}) {
    auto it = probe.find(kind);
    if (it == probe.end()) continue;
    ++handlers;
    if (!it->is_object()) return refuse(kind, "must be an object");
  }
  if (handlers != 1) return refuse("", "needs exactly one of httpGet, tcpSocket, grpc");

  absl::Status read;
  if (auto it = probe.find("httpGet"); it != probe.end()) {
    read = ReadHttpGet(*it, refuse, &spec);
  } else if (it = probe.find("tcpSocket"); it != probe.end()) {
    read = ReadTcpSocket(*it, refuse, &spec);
  } else {
    read = ReadGrpc(*probe.find("grpc"), refuse, &spec);
  }
  if (!read.ok()) return read;

  // 0 is what an unset timeoutSeconds reads as in the API: the default, 1 s.
  int64_t timeout = 1;
  if (absl::Status s = ReadInt(probe, "timeoutSeconds", "timeoutSeconds", 0,
                               std::numeric_limits<int32_t>::max(), 1, refuse, &timeout);
      !s.ok()) {
    return s;
  }
  spec.timeout = absl::Seconds(std::max<int64_t>(timeout, 1));
  return spec;
}

}  // namespace

absl::StatusOr<AppProbeTable> ParseAppProbes(std::string_view json) {
  Prescan prescan;
  if (!Json::sax_parse(json.begin(), json.end(), &prescan)) {
    return absl::InvalidArgumentError(prescan.error());
  }
  Json root = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("not JSON");
  if (!root.is_object()) {
    return absl::InvalidArgumentError("must be a JSON object from path to probe");
  }
  AppProbeTable table;
  for (const auto& [path, probe] : root.items()) {
    absl::StatusOr<AppProbeSpec> spec = ReadProbe(path, probe);
    if (!spec.ok()) return spec.status();
    table.emplace(path, *std::move(spec));
  }
  return table;
}

}  // namespace tandem::agent
