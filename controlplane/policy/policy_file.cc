#include "controlplane/policy/policy_file.h"

#include <arpa/inet.h>

#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/spiffe_id.h"
#include "controlplane/policy/yaml_reader.h"

namespace tandem::controlplane {
namespace {

using tandem::config::ExpectedIdentity;
using tandem::config::InboundMode;
using tandem::config::InboundPort;

// The keys of one layer, shared by `defaults` and every `workloads` entry (a macro
// because YamlReader::Mapping takes a braced list).
#define TANDEM_LAYER_KEYS                                              \
  "meshCidrs", "outboundExcludedPorts", "inboundMode", "inboundPorts", \
      "expectedIdentities"

// Returns "" when `text` is a valid CIDR with no host bits set, else what is wrong.
std::string CidrProblem(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  int prefix = 0;
  unsigned char address[16];
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &prefix)) {
    return "is not a CIDR (address/prefix, e.g. 10.0.0.0/8)";
  }
  int bits = 0;
  if (inet_pton(AF_INET, parts[0].c_str(), address) == 1) {
    bits = 32;
  } else if (inet_pton(AF_INET6, parts[0].c_str(), address) == 1) {
    bits = 128;
  } else {
    return absl::StrCat("has no valid IP address (\"", parts[0], "\")");
  }
  if (prefix < 0 || prefix > bits) {
    return absl::StrCat("has a prefix length outside 0..", bits);
  }
  for (int bit = prefix; bit < bits; ++bit) {
    if (address[bit / 8] & (0x80 >> (bit % 8))) {
      return "has host bits set beyond the prefix length";
    }
  }
  return "";
}

// Returns "" when `text` is "ipv4:port" or "[ipv6]:port", else what is wrong.
std::string DestinationProblem(const std::string& text) {
  size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port) ||
      port == 0 || port > 65535) {
    return "is not ip:port (e.g. 10.0.0.5:8080 or [fd00::5]:8080)";
  }
  std::string host = text.substr(0, colon);
  unsigned char address[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET6, host.c_str(), address) == 1) return "";
  } else if (inet_pton(AF_INET, host.c_str(), address) == 1) {
    return "";
  }
  return "has no valid IP address (write IPv6 in brackets)";
}

// Returns "" when `text` is an exact SPIFFE ID or one of the two wildcards
// spiffe://TD/* and spiffe://TD/ns/NS/*, else what is wrong.
std::string IdentityPatternProblem(const std::string& text) {
  const std::string kShapes =
      "is not a SPIFFE ID or a wildcard (spiffe://TD/* or spiffe://TD/ns/NS/*)";
  if (!absl::EndsWith(text, "/*")) {
    absl::StatusOr<SpiffeId> id = SpiffeId::Parse(text);
    if (id.ok()) return "";
    return absl::StrCat("is not a SPIFFE ID (", id.status().message(), ")");
  }
  absl::StatusOr<SpiffeId> prefix = SpiffeId::Parse(text.substr(0, text.size() - 2));
  if (!prefix.ok()) return kShapes;
  std::vector<std::string> segments =
      absl::StrSplit(prefix->path(), '/', absl::SkipEmpty());
  if (segments.empty() || (segments.size() == 2 && segments[0] == "ns")) return "";
  return kShapes;
}

// Returns "" when `name` is a Kubernetes object name (DNS label for namespaces,
// DNS subdomain for service accounts).
std::string KubernetesNameProblem(const std::string& name, bool allow_dots) {
  size_t max = allow_dots ? 253 : 63;
  if (name.empty() || name.size() > max) {
    return absl::StrCat("must be 1..", max, " characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              (allow_dots && c == '.');
    if (!ok) {
      return absl::StrCat("\"", name, "\" may hold only [a-z0-9-", allow_dots ? "." : "",
                          "]");
    }
  }
  if (name.front() == '-' || name.back() == '-') {
    return absl::StrCat("\"", name, "\" must start and end with [a-z0-9]");
  }
  return "";
}

std::string Indexed(absl::string_view path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

class Parser {
 public:
  explicit Parser(std::string file_name) : reader_(std::move(file_name)) {}

  absl::StatusOr<InboundMode> Mode(const YAML::Node& node, const std::string& path,
                                   int line) {
    absl::StatusOr<std::string> text = reader_.String(node, path, line);
    if (!text.ok()) return text.status();
    if (*text == "STRICT") return tandem::config::STRICT;
    if (*text == "PERMISSIVE") return tandem::config::PERMISSIVE;
    return reader_.Error(YamlReader::LineOf(node, line), path,
                         absl::StrCat("\"", *text, "\" is not STRICT or PERMISSIVE"));
  }

  // Reads a list of strings, each checked by `problem` ("" = fine).
  template <typename Check>
  absl::StatusOr<std::vector<std::string>> Strings(const YAML::Node& node,
                                                   const std::string& path, int line,
                                                   Check problem) {
    absl::StatusOr<std::vector<YAML::Node>> list = reader_.Sequence(node, path, line);
    if (!list.ok()) return list.status();
    std::vector<std::string> out;
    for (size_t i = 0; i < list->size(); ++i) {
      const YAML::Node& element = (*list)[i];
      std::string where = Indexed(path, i);
      int at = YamlReader::LineOf(element, line);
      absl::StatusOr<std::string> text = reader_.String(element, where, at);
      if (!text.ok()) return text.status();
      if (std::string why = problem(*text); !why.empty()) {
        return reader_.Error(at, where, absl::StrCat("\"", *text, "\" ", why));
      }
      out.push_back(*std::move(text));
    }
    return out;
  }

  absl::StatusOr<std::vector<InboundPort>> InboundPorts(const YAML::Node& node,
                                                        const std::string& path,
                                                        int line) {
    absl::StatusOr<std::vector<YAML::Node>> list = reader_.Sequence(node, path, line);
    if (!list.ok()) return list.status();
    std::vector<InboundPort> ports;
    std::set<uint32_t> seen;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string where = Indexed(path, i);
      int at = YamlReader::LineOf((*list)[i], line);
      auto fields = reader_.Mapping((*list)[i], where, at, {"port", "mode", "allow"});
      if (!fields.ok()) return fields.status();
      InboundPort port;
      for (const YamlReader::Field& f : *fields) {
        std::string field_path = absl::StrCat(where, ".", f.key);
        if (f.key == "port") {
          absl::StatusOr<uint32_t> number =
              reader_.Uint(f.value, field_path, f.line, 1, 65535);
          if (!number.ok()) return number.status();
          if (!seen.insert(*number).second) {
            return reader_.Error(f.line, field_path,
                                 absl::StrCat("port ", *number, " is listed twice"));
          }
          port.set_port(*number);
        } else if (f.key == "mode") {
          absl::StatusOr<InboundMode> mode = Mode(f.value, field_path, f.line);
          if (!mode.ok()) return mode.status();
          port.set_mode(*mode);
        } else {
          auto allow = Strings(f.value, field_path, f.line, IdentityPatternProblem);
          if (!allow.ok()) return allow.status();
          for (std::string& id : *allow) port.add_allowed_identities(std::move(id));
        }
      }
      if (port.port() == 0) return reader_.Error(at, where, "port is required");
      ports.push_back(std::move(port));
    }
    return ports;
  }

  absl::StatusOr<std::vector<ExpectedIdentity>> ExpectedIdentities(
      const YAML::Node& node, const std::string& path, int line) {
    absl::StatusOr<std::vector<YAML::Node>> list = reader_.Sequence(node, path, line);
    if (!list.ok()) return list.status();
    std::vector<ExpectedIdentity> identities;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string where = Indexed(path, i);
      int at = YamlReader::LineOf((*list)[i], line);
      auto fields = reader_.Mapping((*list)[i], where, at, {"destination", "spiffeId"});
      if (!fields.ok()) return fields.status();
      ExpectedIdentity identity;
      for (const YamlReader::Field& f : *fields) {
        std::string field_path = absl::StrCat(where, ".", f.key);
        absl::StatusOr<std::string> text = reader_.String(f.value, field_path, f.line);
        if (!text.ok()) return text.status();
        std::string why = f.key == "destination" ? DestinationProblem(*text)
                          : SpiffeId::Parse(*text).ok()
                              ? ""
                              : "is not a SPIFFE ID (wildcards are not allowed here)";
        if (!why.empty()) {
          return reader_.Error(f.line, field_path, absl::StrCat("\"", *text, "\" ", why));
        }
        if (f.key == "destination") {
          identity.set_destination(*text);
        } else {
          identity.set_spiffe_id(*text);
        }
      }
      if (identity.destination().empty() || identity.spiffe_id().empty()) {
        return reader_.Error(at, where, "destination and spiffeId are both required");
      }
      identities.push_back(std::move(identity));
    }
    return identities;
  }

  // Reads one of the layer keys into `layer`.
  absl::Status LayerField(const YamlReader::Field& f, const std::string& path,
                          PolicyFile::Layer* layer) {
    std::string where = absl::StrCat(path, ".", f.key);
    if (f.key == "meshCidrs") {
      auto cidrs = Strings(f.value, where, f.line, CidrProblem);
      if (!cidrs.ok()) return cidrs.status();
      layer->mesh_cidrs = *std::move(cidrs);
    } else if (f.key == "outboundExcludedPorts") {
      absl::StatusOr<std::vector<YAML::Node>> list =
          reader_.Sequence(f.value, where, f.line);
      if (!list.ok()) return list.status();
      std::vector<uint32_t> ports;
      for (size_t i = 0; i < list->size(); ++i) {
        absl::StatusOr<uint32_t> port =
            reader_.Uint((*list)[i], Indexed(where, i),
                         YamlReader::LineOf((*list)[i], f.line), 1, 65535);
        if (!port.ok()) return port.status();
        ports.push_back(*port);
      }
      layer->outbound_excluded_ports = std::move(ports);
    } else if (f.key == "inboundMode") {
      absl::StatusOr<InboundMode> mode = Mode(f.value, where, f.line);
      if (!mode.ok()) return mode.status();
      layer->inbound_mode = *mode;
    } else if (f.key == "inboundPorts") {
      auto ports = InboundPorts(f.value, where, f.line);
      if (!ports.ok()) return ports.status();
      layer->inbound_ports = *std::move(ports);
    } else if (f.key == "expectedIdentities") {
      auto identities = ExpectedIdentities(f.value, where, f.line);
      if (!identities.ok()) return identities.status();
      layer->expected_identities = *std::move(identities);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<PolicyFile::WorkloadEntry> Workload(const YAML::Node& node,
                                                     const std::string& path, int line) {
    auto fields = reader_.Mapping(node, path, line,
                                  {"namespace", "serviceAccount", TANDEM_LAYER_KEYS});
    if (!fields.ok()) return fields.status();
    PolicyFile::WorkloadEntry entry;
    for (const YamlReader::Field& f : *fields) {
      std::string where = absl::StrCat(path, ".", f.key);
      if (f.key == "namespace" || f.key == "serviceAccount") {
        absl::StatusOr<std::string> name = reader_.String(f.value, where, f.line);
        if (!name.ok()) return name.status();
        bool is_ns = f.key == "namespace";
        if (std::string why = KubernetesNameProblem(*name, !is_ns); !why.empty()) {
          return reader_.Error(f.line, where, why);
        }
        (is_ns ? entry.ns : entry.service_account) = *name;
      } else if (absl::Status s = LayerField(f, path, &entry.fields); !s.ok()) {
        return s;
      }
    }
    if (entry.ns.empty()) {
      return reader_.Error(line, path,
                           "namespace is required (it selects the workloads)");
    }
    return entry;
  }

  absl::StatusOr<PolicyFile::Layer> Defaults(const YAML::Node& node, int line) {
    auto fields = reader_.Mapping(node, "defaults", line, {TANDEM_LAYER_KEYS});
    if (!fields.ok()) return fields.status();
    PolicyFile::Layer layer;
    for (const YamlReader::Field& f : *fields) {
      if (absl::Status s = LayerField(f, "defaults", &layer); !s.ok()) return s;
    }
    return layer;
  }

  const YamlReader& reader() const { return reader_; }

 private:
  YamlReader reader_;
};

#undef TANDEM_LAYER_KEYS

template <typename T>
void Override(std::optional<T>* base, const std::optional<T>& layer) {
  if (layer.has_value()) *base = layer;
}

}  // namespace

std::string StableVersion(std::string_view bytes) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a 64 offset basis
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;  // FNV 64 prime
  }
  return absl::StrFormat("%016x", hash);
}

absl::StatusOr<PolicyFile> PolicyFile::Parse(std::string_view text,
                                             std::string_view file_name) {
  Parser parser{std::string(file_name)};
  const YamlReader& reader = parser.reader();
  absl::StatusOr<YAML::Node> root =
      reader.Load(absl::string_view(text.data(), text.size()));
  if (!root.ok()) return root.status();
  // An empty file is refused rather than read as "no policy": a truncated write must
  // not silently drop every allow-list.
  if (!root->IsDefined() || root->IsNull()) {
    return reader.Error(1, "(document)",
                        "the file is empty (expected defaults, workloads, revocation)");
  }
  auto top = reader.Mapping(*root, "", 1, {"defaults", "workloads", "revocation"});
  if (!top.ok()) return top.status();
  PolicyFile policy;
  policy.version_ = StableVersion(text);
  for (const YamlReader::Field& f : *top) {
    if (f.key == "defaults") {
      absl::StatusOr<Layer> defaults = parser.Defaults(f.value, f.line);
      if (!defaults.ok()) return defaults.status();
      policy.defaults_ = *std::move(defaults);
    } else if (f.key == "revocation") {
      auto fields =
          reader.Mapping(f.value, "revocation", f.line, {"closeOpenConnections"});
      if (!fields.ok()) return fields.status();
      for (const YamlReader::Field& r : *fields) {
        absl::StatusOr<bool> close =
            reader.Bool(r.value, "revocation.closeOpenConnections", r.line);
        if (!close.ok()) return close.status();
        policy.close_open_connections_ = *close;
      }
    } else {
      absl::StatusOr<std::vector<YAML::Node>> list =
          reader.Sequence(f.value, "workloads", f.line);
      if (!list.ok()) return list.status();
      std::map<std::pair<std::string, std::string>, size_t> selectors;
      for (size_t i = 0; i < list->size(); ++i) {
        std::string where = Indexed("workloads", i);
        int at = YamlReader::LineOf((*list)[i], f.line);
        absl::StatusOr<WorkloadEntry> entry = parser.Workload((*list)[i], where, at);
        if (!entry.ok()) return entry.status();
        auto [it, inserted] =
            selectors.emplace(std::make_pair(entry->ns, entry->service_account), i);
        if (!inserted) {
          return reader.Error(
              at, where,
              absl::StrCat("selects the same workloads as workloads[", it->second, "]"));
        }
        policy.workloads_.push_back(*std::move(entry));
      }
    }
  }
  return policy;
}

tandem::policy::v1::WorkloadPolicy PolicyFile::Resolve(
    const ServiceAccount& account) const {
  Layer merged = defaults_;
  // Namespace-wide entries first, then the service account's own: the most specific
  // entry that sets a field wins.
  for (bool with_account : {false, true}) {
    for (const WorkloadEntry& entry : workloads_) {
      if (entry.ns != account.ns || entry.service_account.empty() == with_account ||
          (with_account && entry.service_account != account.name)) {
        continue;
      }
      Override(&merged.mesh_cidrs, entry.fields.mesh_cidrs);
      Override(&merged.outbound_excluded_ports, entry.fields.outbound_excluded_ports);
      Override(&merged.inbound_mode, entry.fields.inbound_mode);
      Override(&merged.inbound_ports, entry.fields.inbound_ports);
      Override(&merged.expected_identities, entry.fields.expected_identities);
    }
  }
  tandem::policy::v1::WorkloadPolicy out;
  for (const std::string& cidr : merged.mesh_cidrs.value_or(std::vector<std::string>{})) {
    out.add_mesh_cidrs(cidr);
  }
  for (uint32_t port : merged.outbound_excluded_ports.value_or(std::vector<uint32_t>{})) {
    out.add_outbound_excluded_ports(port);
  }
  out.set_default_inbound_mode(merged.inbound_mode.value_or(tandem::config::STRICT));
  for (const InboundPort& port :
       merged.inbound_ports.value_or(std::vector<InboundPort>{})) {
    *out.add_inbound_ports() = port;
  }
  for (const ExpectedIdentity& identity :
       merged.expected_identities.value_or(std::vector<ExpectedIdentity>{})) {
    *out.add_expected_identities() = identity;
  }
  return out;
}

}  // namespace tandem::controlplane
