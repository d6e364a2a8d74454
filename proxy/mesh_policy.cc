#include "proxy/mesh_policy.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log/logger.h"
#include "common/spiffe_id.h"
#include "tandem/mesh_policy.pb.h"
#include "tandem/proxy_config.pb.h"

namespace tandem::proxy {
namespace {

constexpr char kConfigSource[] = "config file";
constexpr char kControlPlaneSource[] = "control plane";

absl::Status FieldError(const char* what, const std::string& field,
                        const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", field, ": ", why));
}

// Checks a SPIFFE ID (or an allow-list prefix "…/*") names our trust domain: an ID
// from elsewhere could never verify here, so a rule naming one cannot be applied.
absl::Status CheckIdentity(const std::string& id, bool allow_wildcard,
                           const std::string& trust_domain) {
  std::string check =
      allow_wildcard && absl::EndsWith(id, "/*") ? id.substr(0, id.size() - 2) : id;
  absl::StatusOr<SpiffeId> parsed = SpiffeId::Parse(check);
  if (!parsed.ok()) return parsed.status();
  if (parsed->trust_domain() != trust_domain) {
    return absl::InvalidArgumentError(absl::StrCat(
        "this proxy has no roots for trust domain \"", parsed->trust_domain(), "\""));
  }
  return absl::OkStatus();
}

// The config file and a WorkloadPolicy name these fields alike; one parser for both.
template <typename Pb>
absl::StatusOr<MeshRules> ParseRules(const Pb& pb, const char* what,
                                     const std::string& trust_domain) {
  MeshRules rules;
  for (int i = 0; i < pb.mesh_cidrs_size(); ++i) {
    absl::StatusOr<Cidr> c = Cidr::Parse(pb.mesh_cidrs(i));
    if (!c.ok()) {
      return FieldError(what, absl::StrCat("mesh_cidrs[", i, "]"),
                        std::string(c.status().message()));
    }
    rules.mesh_cidrs.push_back(*c);
  }
  for (int i = 0; i < pb.outbound_excluded_ports_size(); ++i) {
    uint32_t port = pb.outbound_excluded_ports(i);
    if (port == 0 || port > 65535) {
      return FieldError(what, absl::StrCat("outbound_excluded_ports[", i, "]"),
                        "must be 1..65535");
    }
    rules.outbound_excluded_ports.push_back(static_cast<uint16_t>(port));
  }
  auto mode = [](config::InboundMode m) {
    return m == config::PERMISSIVE ? InboundMode::kPermissive : InboundMode::kStrict;
  };
  rules.default_inbound_mode = mode(pb.default_inbound_mode());
  for (int i = 0; i < pb.inbound_ports_size(); ++i) {
    const config::InboundPort& p = pb.inbound_ports(i);
    std::string field = absl::StrCat("inbound_ports[", i, "]");
    if (p.port() == 0 || p.port() > 65535) {
      return FieldError(what, field + ".port", "must be 1..65535");
    }
    InboundPortPolicy policy{static_cast<uint16_t>(p.port()), mode(p.mode()), {}};
    for (int j = 0; j < p.allowed_identities_size(); ++j) {
      const std::string& id = p.allowed_identities(j);
      if (absl::Status s = CheckIdentity(id, /*allow_wildcard=*/true, trust_domain);
          !s.ok()) {
        return FieldError(what, absl::StrCat(field, ".allowed_identities[", j, "]"),
                          std::string(s.message()));
      }
      policy.allowed_identities.push_back(id);
    }
    rules.inbound_ports.push_back(std::move(policy));
  }
  for (int i = 0; i < pb.expected_identities_size(); ++i) {
    const config::ExpectedIdentity& e = pb.expected_identities(i);
    std::string field = absl::StrCat("expected_identities[", i, "]");
    absl::StatusOr<SocketAddress> dest = SocketAddress::Parse(e.destination());
    if (!dest.ok()) {
      return FieldError(what, field + ".destination",
                        std::string(dest.status().message()));
    }
    if (absl::Status s = CheckIdentity(e.spiffe_id(), false, trust_domain); !s.ok()) {
      return FieldError(what, field + ".spiffe_id", std::string(s.message()));
    }
    rules.expected_identities.emplace_back(dest->text, e.spiffe_id());
  }
  return rules;
}

// A serial as X.509 prints it: lower-case hex, no leading zeros.
bool IsCanonicalSerial(const std::string& hex) {
  if (hex.empty() || (hex.size() > 1 && hex[0] == '0')) return false;
  return std::all_of(hex.begin(), hex.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// Quotes text from the control plane (versions, reasons) for JSON.
std::string JsonString(const std::string& text) { return log::JsonQuote(text); }

std::string JsonStrings(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(JsonString(item));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

const char* ModeName(InboundMode mode) {
  return mode == InboundMode::kPermissive ? "PERMISSIVE" : "STRICT";
}

}  // namespace

absl::StatusOr<MeshRules> MeshRulesFromConfig(const config::ProxyConfig& pb,
                                              const std::string& trust_domain) {
  return ParseRules(pb, "config field", trust_domain);
}

bool IdentityAllowed(const std::vector<std::string>& allowed, const std::string& id) {
  if (allowed.empty()) return true;
  for (const std::string& entry : allowed) {
    if (entry == id) return true;
    if (absl::EndsWith(entry, "/*") &&
        absl::StartsWith(id, entry.substr(0, entry.size() - 1))) {
      return true;
    }
  }
  return false;
}

MeshPolicy::MeshPolicy(MeshRules rules, std::vector<RevocationEntry> revocations,
                       std::string version, std::string source)
    : rules_(std::move(rules)),
      revocations_(std::move(revocations)),
      version_(std::move(version)),
      source_(std::move(source)) {}

std::shared_ptr<const MeshPolicy> MeshPolicy::FromConfigRules(const MeshRules& rules) {
  return std::shared_ptr<const MeshPolicy>(new MeshPolicy(rules, {}, "", kConfigSource));
}

absl::StatusOr<std::shared_ptr<const MeshPolicy>> MeshPolicy::FromProto(
    const policy::v1::WorkloadPolicy& pb, const std::string& version,
    const std::string& trust_domain, absl::Time now) {
  constexpr char kWhat[] = "policy field";
  absl::StatusOr<MeshRules> rules = ParseRules(pb, kWhat, trust_domain);
  if (!rules.ok()) return rules.status();
  std::vector<RevocationEntry> revocations;
  for (int i = 0; i < pb.revocations_size(); ++i) {
    const policy::v1::Revocation& r = pb.revocations(i);
    std::string field = absl::StrCat("revocations[", i, "]");
    RevocationEntry entry;
    switch (r.target_case()) {
      case policy::v1::Revocation::kSerialHex:
        if (!IsCanonicalSerial(r.serial_hex())) {
          return FieldError(kWhat, field + ".serial_hex",
                            absl::StrCat("\"", r.serial_hex(),
                                         "\" is not lower-case hex without leading "
                                         "zeros"));
        }
        entry.serial_hex = r.serial_hex();
        break;
      case policy::v1::Revocation::kSpiffeId:
        if (absl::Status s = CheckIdentity(r.spiffe_id(), false, trust_domain); !s.ok()) {
          return FieldError(kWhat, field + ".spiffe_id", std::string(s.message()));
        }
        entry.spiffe_id = r.spiffe_id();
        break;
      case policy::v1::Revocation::TARGET_NOT_SET:
        return FieldError(kWhat, field, "names neither serial_hex nor spiffe_id");
    }
    if (r.expires_unix_seconds() <= 0) {
      return FieldError(kWhat, field + ".expires_unix_seconds",
                        "must be set (revocations are dropped when they expire)");
    }
    entry.expires = absl::FromUnixSeconds(r.expires_unix_seconds());
    if (entry.expires <= now) continue;  // expired: nothing left to refuse
    entry.reason = r.reason();
    entry.close_open_connections = r.close_open_connections();
    revocations.push_back(std::move(entry));
  }
  return std::shared_ptr<const MeshPolicy>(new MeshPolicy(
      *std::move(rules), std::move(revocations), version, kControlPlaneSource));
}

bool MeshPolicy::IsMeshed(const SocketAddress& destination) const {
  for (uint16_t port : rules_.outbound_excluded_ports) {
    if (destination.port() == port) return false;
  }
  if (rules_.mesh_cidrs.empty()) return true;
  for (const Cidr& cidr : rules_.mesh_cidrs) {
    if (cidr.Contains(destination)) return true;
  }
  return false;
}

InboundPortPolicy MeshPolicy::InboundPolicy(uint16_t port) const {
  for (const InboundPortPolicy& p : rules_.inbound_ports) {
    if (p.port == port) return p;
  }
  return InboundPortPolicy{port, rules_.default_inbound_mode, {}};
}

std::string MeshPolicy::ExpectedIdentity(const SocketAddress& destination) const {
  for (const auto& [dest, id] : rules_.expected_identities) {
    if (dest == destination.text) return id;
  }
  return "";
}

const RevocationEntry* MeshPolicy::FindRevocation(const std::string& serial_hex,
                                                  const std::string& spiffe_id,
                                                  absl::Time now) const {
  const RevocationEntry* found = nullptr;
  for (const RevocationEntry& r : revocations_) {
    if (r.expires <= now) continue;
    if ((!r.serial_hex.empty() && r.serial_hex == serial_hex) ||
        (!r.spiffe_id.empty() && r.spiffe_id == spiffe_id)) {
      if (r.close_open_connections) return &r;
      if (found == nullptr) found = &r;
    }
  }
  return found;
}

bool MeshPolicy::ClosesOpenConnections() const {
  return std::any_of(revocations_.begin(), revocations_.end(),
                     [](const RevocationEntry& r) { return r.close_open_connections; });
}

std::string MeshPolicy::ToJson() const {
  std::vector<std::string> cidrs, ports, inbound, expected, revoked;
  for (const Cidr& c : rules_.mesh_cidrs) cidrs.push_back(JsonString(c.text));
  for (uint16_t p : rules_.outbound_excluded_ports) ports.push_back(absl::StrCat(p));
  for (const InboundPortPolicy& p : rules_.inbound_ports) {
    inbound.push_back(absl::StrCat(
        "{\"port\": ", p.port, ", \"mode\": \"", ModeName(p.mode),
        "\", \"allowed_identities\": ", JsonStrings(p.allowed_identities), "}"));
  }
  for (const auto& [dest, id] : rules_.expected_identities) {
    expected.push_back(absl::StrCat("{\"destination\": ", JsonString(dest),
                                    ", \"spiffe_id\": ", JsonString(id), "}"));
  }
  for (const RevocationEntry& r : revocations_) {
    revoked.push_back(absl::StrCat(
        "{", r.serial_hex.empty() ? "\"spiffe_id\": " : "\"serial_hex\": ",
        JsonString(r.serial_hex.empty() ? r.spiffe_id : r.serial_hex),
        ", \"expires_unix_seconds\": ", absl::ToUnixSeconds(r.expires),
        ", \"reason\": ", JsonString(r.reason), ", \"close_open_connections\": ",
        r.close_open_connections ? "true" : "false", "}"));
  }
  return absl::StrCat("{\"version\": ", JsonString(version_),
                      ", \"source\": ", JsonString(source_), ", \"mesh_cidrs\": [",
                      absl::StrJoin(cidrs, ", "), "], \"outbound_excluded_ports\": [",
                      absl::StrJoin(ports, ", "), "], \"default_inbound_mode\": \"",
                      ModeName(rules_.default_inbound_mode), "\", \"inbound_ports\": [",
                      absl::StrJoin(inbound, ", "), "], \"expected_identities\": [",
                      absl::StrJoin(expected, ", "), "], \"revocations\": [",
                      absl::StrJoin(revoked, ", "), "]}\n");
}

}  // namespace tandem::proxy
