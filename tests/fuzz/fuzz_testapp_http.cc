// Fuzzes the test app's HTTP parsing (tests/app/http_lite.h): request heads, response
// heads, URLs and query parameters, all read from the network or the command line.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tests/app/http_lite.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tandem::testapp;
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (std::optional<RequestHead> request = ParseRequestHead(input, &error)) {
    if (request->target.empty() || request->target[0] != '/') std::abort();
    if (request->content_length > kMaxBodyBytes) std::abort();
    QueryParam(request->target, "msg");
    TargetPath(request->target);
  } else if (error.empty()) {
    std::abort();  // every refusal says why
  }
  error.clear();
  if (std::optional<ResponseHead> response = ParseResponseHead(input, &error)) {
    if (response->status < 100 || response->status > 999) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  error.clear();
  if (std::optional<Url> url = ParseUrl(input, &error)) {
    if (url->port < 1 || url->port > 65535 || url->target.empty()) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  return 0;
}
