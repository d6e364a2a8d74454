// The little HTTP/1.1 the test app speaks: a request head, a URL, a query parameter and
// a response status line. No classes, no Abseil: the test app links statically and runs
// FROM scratch, so it carries only the C++ standard library.
#ifndef TANDEM_TESTS_APP_HTTP_LITE_H_
#define TANDEM_TESTS_APP_HTTP_LITE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::testapp {

// The largest request or response head either side reads.
inline constexpr size_t kMaxHeadBytes = 8192;
// The largest body either side reads (a POST /echo, or a response).
inline constexpr size_t kMaxBodyBytes = 65536;

struct RequestHead {
  std::string method;
  std::string target;         // "/echo?msg=hi"
  size_t content_length = 0;  // from Content-Length; 0 when absent
};

// Parses a request head (request line and headers, without the blank line). Returns
// nullopt and sets *error when it is malformed or Content-Length exceeds kMaxBodyBytes.
std::optional<RequestHead> ParseRequestHead(std::string_view head, std::string* error);

// Returns the percent-decoded value of `name` in the target's query string, or nullopt
// when absent or badly encoded.
std::optional<std::string> QueryParam(std::string_view target, std::string_view name);

// The path of a request target, without its query string.
std::string_view TargetPath(std::string_view target);

struct Url {
  std::string host;  // an IPv4 or IPv6 literal, without brackets
  int port = 80;
  std::string target;  // path and query, "/" when empty
};

// Parses "http://HOST[:PORT][/PATH]" with HOST an IP literal ("[v6]" for IPv6): the app
// resolves no names (a static binary FROM scratch has no NSS). Sets *error on refusal.
std::optional<Url> ParseUrl(std::string_view url, std::string* error);

struct ResponseHead {
  int status = 0;
  std::optional<size_t> content_length;
};

// Parses a response head ("HTTP/1.x NNN reason" and headers). Sets *error on refusal.
std::optional<ResponseHead> ParseResponseHead(std::string_view head, std::string* error);

}  // namespace tandem::testapp

#endif  // TANDEM_TESTS_APP_HTTP_LITE_H_
