#include "common/spiffe_id.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace tandem {
namespace {

constexpr absl::string_view kScheme = "spiffe://";
constexpr size_t kMaxIdLength = 2048;
constexpr size_t kMaxTrustDomainLength = 255;

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

bool IsPathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

absl::Status Invalid(absl::string_view what, absl::string_view input) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid SPIFFE ID \"", input.substr(0, 128), "\": ", what));
}

absl::Status ValidatePath(absl::string_view path, absl::string_view input) {
  if (path.empty()) return absl::OkStatus();
  if (path.back() == '/') return Invalid("path has a trailing '/'", input);
  for (absl::string_view segment : absl::StrSplit(path.substr(1), '/')) {
    if (segment.empty()) return Invalid("path has an empty segment", input);
    if (segment == "." || segment == "..") {
      return Invalid("path has a '.' or '..' segment", input);
    }
    for (char c : segment) {
      if (!IsPathChar(c)) {
        return Invalid("path segments may hold only [A-Za-z0-9._-]", input);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SpiffeId::ValidateTrustDomain(std::string_view trust_domain) {
  absl::string_view td(trust_domain.data(), trust_domain.size());
  if (td.empty()) return absl::InvalidArgumentError("trust domain is empty");
  if (td.size() > kMaxTrustDomainLength) {
    return absl::InvalidArgumentError("trust domain is longer than 255 bytes");
  }
  for (char c : td) {
    if (!IsTrustDomainChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust domain \"", td.substr(0, 64),
                       "\" may hold only lower-case letters, digits, '.', '-' and '_'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SpiffeId> SpiffeId::Parse(std::string_view input) {
  absl::string_view uri(input.data(), input.size());
  if (uri.empty()) return Invalid("empty", uri);
  if (uri.size() > kMaxIdLength) return Invalid("longer than 2048 bytes", uri);
  if (!absl::StartsWith(uri, kScheme)) {
    return Invalid("scheme must be \"spiffe://\" (lower case)", uri);
  }
  absl::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  absl::string_view td = rest.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash);
  if (td.empty()) return Invalid("trust domain is missing", uri);
  if (td.find('@') != absl::string_view::npos)
    return Invalid("userinfo is not allowed", uri);
  if (td.find(':') != absl::string_view::npos)
    return Invalid("a port is not allowed", uri);
  if (uri.find_first_of("?#") != absl::string_view::npos) {
    return Invalid("query and fragment are not allowed", uri);
  }
  if (absl::Status s = ValidateTrustDomain(std::string_view(td.data(), td.size()));
      !s.ok()) {
    return Invalid(s.message(), uri);
  }
  if (absl::Status s = ValidatePath(path, uri); !s.ok()) return s;
  return SpiffeId(std::string(td), std::string(path));
}

absl::StatusOr<SpiffeId> SpiffeId::ForWorkload(std::string_view trust_domain,
                                               std::string_view ns,
                                               std::string_view service_account) {
  return Parse(
      absl::StrCat(kScheme, absl::string_view(trust_domain.data(), trust_domain.size()),
                   "/ns/", absl::string_view(ns.data(), ns.size()), "/sa/",
                   absl::string_view(service_account.data(), service_account.size())));
}

std::string SpiffeId::KubernetesNamespace() const {
  std::vector<absl::string_view> parts = absl::StrSplit(path_, '/');
  // "/ns/x/sa/y" splits into {"", "ns", "x", "sa", "y"}.
  if (parts.size() == 5 && parts[1] == "ns" && parts[3] == "sa")
    return std::string(parts[2]);
  return "";
}

std::string SpiffeId::KubernetesServiceAccount() const {
  std::vector<absl::string_view> parts = absl::StrSplit(path_, '/');
  if (parts.size() == 5 && parts[1] == "ns" && parts[3] == "sa")
    return std::string(parts[4]);
  return "";
}

}  // namespace tandem
