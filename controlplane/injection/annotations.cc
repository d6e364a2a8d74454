#include "controlplane/injection/annotations.h"

#include <arpa/inet.h>

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tandem::injection {
namespace {

absl::Status Refuse(absl::string_view name, absl::string_view value,
                    absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("annotation ", name, ": \"", absl::CHexEscape(value), "\": ", why));
}

absl::StatusOr<bool> ParseBool(absl::string_view name, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  return Refuse(name, value, "must be \"true\" or \"false\"");
}

// Splits "a, b" into {"a", "b"}; "" is the empty list, an empty element is refused.
absl::StatusOr<std::vector<std::string>> SplitList(absl::string_view name,
                                                   const std::string& value) {
  std::vector<std::string> items;
  if (absl::StripAsciiWhitespace(value).empty()) return items;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) return Refuse(name, value, "has an empty list element");
    items.emplace_back(item);
  }
  return items;
}

absl::StatusOr<std::string> ParsePorts(absl::string_view name, const std::string& value) {
  absl::StatusOr<std::vector<std::string>> items = SplitList(name, value);
  if (!items.ok()) return items.status();
  for (const std::string& item : *items) {
    int port = 0;
    if (item.find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(item, &port) || port < 1 || port > 65535) {
      return Refuse(
          name, value,
          absl::StrCat("\"", absl::CHexEscape(item), "\" is not a port in 1..65535"));
    }
  }
  return absl::StrJoin(*items, ",");
}

absl::StatusOr<std::string> ParseCidrs(absl::string_view name, const std::string& value) {
  absl::StatusOr<std::vector<std::string>> items = SplitList(name, value);
  if (!items.ok()) return items.status();
  for (const std::string& item : *items) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(item, absl::MaxSplits('/', 1));
    unsigned char address[16];
    bool v6 = parts.first.find(':') != std::string::npos;
    int prefix = 0;
    bool ok = inet_pton(v6 ? AF_INET6 : AF_INET, parts.first.c_str(), address) == 1;
    if (ok && item.find('/') != std::string::npos) {
      ok = !parts.second.empty() &&
           parts.second.find_first_not_of("0123456789") == std::string::npos &&
           absl::SimpleAtoi(parts.second, &prefix) && prefix <= (v6 ? 128 : 32);
    }
    if (!ok) {
      return Refuse(name, value,
                    absl::StrCat("\"", absl::CHexEscape(item), "\" is not a CIDR"));
    }
  }
  return absl::StrJoin(*items, ",");
}

// A Kubernetes resource quantity ("100m", "64Mi", "1.5", "1e3"), never negative.
absl::StatusOr<std::string> ParseQuantity(absl::string_view name,
                                          const std::string& value) {
  static const std::regex kQuantity(
      "\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?["
      "0-9]+)?");
  if (value.size() > 64 || !std::regex_match(value, kQuantity)) {
    return Refuse(name, value, "is not a Kubernetes quantity (like 100m or 64Mi)");
  }
  return value;
}

}  // namespace

absl::StatusOr<InjectionSettings> ParseInjectionAnnotations(const Json& annotations) {
  InjectionSettings settings;
  if (annotations.is_null()) return settings;
  if (!annotations.is_object()) {
    return absl::InvalidArgumentError("metadata.annotations is not a mapping");
  }
  for (const auto& [name, json_value] : annotations.items()) {
    if (!absl::StartsWith(name, kAnnotationPrefix) || name == kStatusAnnotation) continue;
    if (!json_value.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("annotation ", absl::CHexEscape(name), ": ", DumpJson(json_value),
                       ": must be a string (quote it)"));
    }
    const std::string& value = json_value.get_ref<const std::string&>();
    absl::Status status;
    auto set = [&status](std::string* out, absl::StatusOr<std::string> parsed) {
      if (parsed.ok()) {
        *out = *std::move(parsed);
      } else {
        status = parsed.status();
      }
    };
    if (name == kInjectAnnotation || name == kRewriteProbesAnnotation) {
      absl::StatusOr<bool> b = ParseBool(name, value);
      if (!b.ok()) return b.status();
      (name == kInjectAnnotation ? settings.inject : settings.rewrite_app_probes) = *b;
    } else if (name == kExcludeInboundPortsAnnotation) {
      absl::StatusOr<std::string> ports = ParsePorts(name, value);
      if (!ports.ok()) return ports.status();
      if (!ports->empty()) absl::StrAppend(&settings.exclude_inbound_ports, ",", *ports);
    } else if (name == kIncludeInboundPortsAnnotation) {
      // "*" (every port) is the default.
      if (value != "*") set(&settings.include_inbound_ports, ParsePorts(name, value));
    } else if (name == kExcludeOutboundPortsAnnotation) {
      set(&settings.exclude_outbound_ports, ParsePorts(name, value));
    } else if (name == kExcludeOutboundCidrsAnnotation) {
      set(&settings.exclude_outbound_cidrs, ParseCidrs(name, value));
    } else if (name == kInboundModeAnnotation) {
      if (value != "STRICT" && value != "PERMISSIVE") {
        return Refuse(name, value, "must be STRICT or PERMISSIVE");
      }
      settings.inbound_mode = value;
    } else if (name == kProxyCpuAnnotation) {
      set(&settings.proxy_cpu, ParseQuantity(name, value));
    } else if (name == kProxyMemoryAnnotation) {
      set(&settings.proxy_memory, ParseQuantity(name, value));
    } else if (name == kProxyCpuLimitAnnotation) {
      set(&settings.proxy_cpu_limit, ParseQuantity(name, value));
    } else if (name == kProxyMemoryLimitAnnotation) {
      set(&settings.proxy_memory_limit, ParseQuantity(name, value));
    } else if (name == kSidecarModeAnnotation) {
      if (value == "native") {
        settings.sidecar_mode = SidecarMode::kNative;
      } else if (value == "classic") {
        settings.sidecar_mode = SidecarMode::kClassic;
      } else {
        return Refuse(name, value, "must be native or classic");
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown annotation ", absl::CHexEscape(name),
                       " (known: ", absl::StrJoin(kAllAnnotations, ", "), ")"));
    }
    if (!status.ok()) return status;
  }
  return settings;
}

}  // namespace tandem::injection
