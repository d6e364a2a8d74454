#include "tests/app/http_lite.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <vector>

namespace tandem::testapp {
namespace {

std::vector<std::string_view> SplitLines(std::string_view head) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    if (end == std::string_view::npos) {
      lines.push_back(head);
      break;
    }
    lines.push_back(head.substr(0, end));
    head.remove_prefix(end + 2);
  }
  return lines;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseNumber(std::string_view s, size_t max, size_t* out) {
  if (s.empty() || s.size() > 10) return false;
  size_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value > max) return false;
  *out = value;
  return true;
}

// Reads the headers after the first line; only Content-Length matters to the app.
bool ParseHeaders(const std::vector<std::string_view>& lines,
                  std::optional<size_t>* content_length, std::string* error) {
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *error = "malformed header line";
      return false;
    }
    if (!EqualsIgnoreCase(lines[i].substr(0, colon), "content-length")) continue;
    size_t length = 0;
    if (content_length->has_value() ||
        !ParseNumber(Trim(lines[i].substr(colon + 1)), kMaxBodyBytes, &length)) {
      *error = "bad or repeated Content-Length";
      return false;
    }
    *content_length = length;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<RequestHead> ParseRequestHead(std::string_view head, std::string* error) {
  std::vector<std::string_view> lines = SplitLines(head);
  if (lines.empty()) {
    *error = "empty request";
    return std::nullopt;
  }
  std::string_view line = lines[0];
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1 ||
      line.substr(sp2 + 1).substr(0, 7) != "HTTP/1." || line.size() != sp2 + 9) {
    *error = "malformed request line";
    return std::nullopt;
  }
  RequestHead request;
  request.method = std::string(line.substr(0, sp1));
  request.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  if (request.target.front() != '/') {
    *error = "request target is not a path";
    return std::nullopt;
  }
  std::optional<size_t> length;
  if (!ParseHeaders(lines, &length, error)) return std::nullopt;
  request.content_length = length.value_or(0);
  return request;
}

std::string_view TargetPath(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::optional<std::string> QueryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<Url> ParseUrl(std::string_view url, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    *error = "URL must start with http://";
    return std::nullopt;
  }
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  Url parsed;
  parsed.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  std::string_view host = authority, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "unclosed [ in URL host";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      *error = "junk after ] in URL host";
      return std::nullopt;
    }
    has_port = !rest.empty();
    if (has_port) port = rest.substr(1);
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  parsed.host = std::string(host);
  unsigned char addr[16];
  if (inet_pton(AF_INET, parsed.host.c_str(), addr) != 1 &&
      inet_pton(AF_INET6, parsed.host.c_str(), addr) != 1) {
    *error = "URL host must be an IP address";
    return std::nullopt;
  }
  if (has_port) {
    size_t value = 0;
    if (!ParseNumber(port, 65535, &value) || value == 0) {
      *error = "bad URL port";
      return std::nullopt;
    }
    parsed.port = static_cast<int>(value);
  }
  return parsed;
}

std::optional<ResponseHead> ParseResponseHead(std::string_view head, std::string* error) {
  std::vector<std::string_view> lines = SplitLines(head);
  size_t status = 0;
  if (lines.empty() || lines[0].substr(0, 7) != "HTTP/1." || lines[0].size() < 12 ||
      lines[0][8] != ' ' || !ParseNumber(lines[0].substr(9, 3), 999, &status) ||
      status < 100) {
    *error = "malformed status line";
    return std::nullopt;
  }
  ResponseHead response;
  response.status = static_cast<int>(status);
  if (!ParseHeaders(lines, &response.content_length, error)) return std::nullopt;
  return response;
}

}  // namespace tandem::testapp
