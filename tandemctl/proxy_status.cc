#include "tandemctl/proxy_status.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace tandem::tandemctl {
namespace {

// A table column's cell; "-" for nothing, so columns never collapse.
std::string Cell(const std::string& text) { return text.empty() ? "-" : Printable(text); }

}  // namespace

std::string Printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return text;
}

absl::StatusOr<std::vector<ProxyStatus>> ParseProxyStatus(const std::string& json) {
  // No exceptions: a parse error gives a discarded value.
  nlohmann::json root = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError("policy streams: not a JSON object");
  }
  auto streams = root.find("streams");
  if (streams == root.end()) return std::vector<ProxyStatus>{};  // protobuf omits []
  if (!streams->is_array()) {
    return absl::InvalidArgumentError("policy streams: \"streams\" is not an array");
  }
  std::vector<ProxyStatus> out;
  for (size_t i = 0; i < streams->size(); ++i) {
    const nlohmann::json& entry = (*streams)[i];
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy streams: stream ", i, " is not an object"));
    }
    ProxyStatus status;
    std::string not_after;
    const std::pair<const char*, std::string*> fields[] = {
        {"node", &status.node},
        {"spiffe_id", &status.spiffe_id},
        {"sent_version", &status.sent_version},
        {"acked_version", &status.acked_version},
        {"nacked_version", &status.nacked_version},
        {"last_nack_error", &status.last_nack_error},
        {"proxy_name", &status.proxy_name},
        {"proxy_version", &status.proxy_version},
        {"agent_version", &status.agent_version},
        {"cert_serial", &status.cert_serial},
        {"cert_not_after", &not_after},
    };
    for (const auto& [name, value] : fields) {
      auto field = entry.find(name);
      if (field == entry.end()) continue;
      if (!field->is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy streams: stream ", i, ": ", name, " is not a string"));
      }
      *value = field->get<std::string>();
    }
    if (!not_after.empty()) {
      std::string why;
      if (!absl::ParseTime(absl::RFC3339_full, not_after, &status.cert_not_after, &why)) {
        return absl::InvalidArgumentError(absl::StrCat("policy streams: stream ", i,
                                                       ": cert_not_after \"", not_after,
                                                       "\" is not RFC 3339 (", why, ")"));
      }
    }
    out.push_back(std::move(status));
  }
  std::sort(out.begin(), out.end(), [](const ProxyStatus& a, const ProxyStatus& b) {
    return std::tie(a.node, a.spiffe_id) < std::tie(b.node, b.spiffe_id);
  });
  return out;
}

std::string PolicyState(const ProxyStatus& s) {
  if (s.sent_version.empty()) return "NOT SENT";
  if (s.acked_version == s.sent_version) return "ACKED";
  if (s.nacked_version == s.sent_version) return "NACKED";
  return "SENT";
}

std::string Until(absl::Time when, absl::Time now) {
  if (when == absl::InfinitePast()) return "-";
  absl::Duration left = absl::Trunc(when - now, absl::Seconds(1));
  if (left < absl::ZeroDuration())
    return absl::StrCat(absl::FormatDuration(-left), " ago");
  return absl::StrCat("in ", absl::FormatDuration(left));
}

std::string FormatProxyStatus(const std::vector<ProxyStatus>& streams, absl::Time now) {
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "IDENTITY", "CERT SERIAL", "CERT EXPIRES", "AGENT", "PROXY", "POLICY"}};
  for (const ProxyStatus& s : streams) {
    std::string expires =
        s.cert_not_after == absl::InfinitePast()
            ? "-"
            : absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", s.cert_not_after,
                                            absl::UTCTimeZone()),
                           " (", Until(s.cert_not_after, now), ")");
    // No proxy name: the agent has no proxy connected to its relay.
    std::string proxy = s.proxy_name.empty() ? "not connected"
                                             : absl::StrCat(Cell(s.proxy_name), " ",
                                                            Cell(s.proxy_version));
    std::string state = PolicyState(s);
    std::string policy = state;
    if (state == "ACKED" || state == "SENT") {
      absl::StrAppend(&policy, " ", Cell(s.sent_version));
    } else if (state == "NACKED") {
      absl::StrAppend(&policy, " ", Cell(s.sent_version), " (in force: ",
                      s.acked_version.empty() ? "none" : Cell(s.acked_version),
                      "): ", Printable(s.last_nack_error));
    }
    rows.push_back({Cell(s.node), Cell(s.spiffe_id), Cell(s.cert_serial), expires,
                    Cell(s.agent_version), proxy, policy});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c)
      widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      absl::StrAppend(&line, row[c]);
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

}  // namespace tandem::tandemctl
