#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace tandem {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr absl::Duration kReadDeadline = absl::Seconds(2);

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(
    const std::string& host_port) {
  size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad listen address ", host_port));
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  sockaddr_storage ss{};
  socklen_t len;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("bad listen host ", host));
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host_port, ": ", std::strerror(err)));
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  return std::unique_ptr<HttpServer>(new HttpServer(fd, bound));
}

HttpServer::~HttpServer() {
  Stop();
  close(listen_fd_);
}

void HttpServer::Handle(const std::string& path, Handler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[path] = std::move(handler);
}

void HttpServer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
}

void HttpServer::Run() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

void HttpServer::Serve(int fd) {
  std::string request;
  absl::Time deadline = absl::Now() + kReadDeadline;
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) return;
    int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0) return;
    char buf[2048];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return;
    request.append(buf, n);
  }
  HttpResponse response;
  std::vector<std::string> first =
      absl::StrSplit(request.substr(0, request.find("\r\n")), ' ');
  if (first.size() != 3 || first[2].rfind("HTTP/1.", 0) != 0) {
    response = {400, "malformed request\n"};
  } else {
    HttpRequest req{first[0], first[1], ""};
    size_t q = req.path.find('?');
    if (q != std::string::npos) {
      req.query = req.path.substr(q + 1);
      req.path = req.path.substr(0, q);
    }
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      auto it = handlers_.find(req.path);
      if (it != handlers_.end()) handler = it->second;
    }
    response = handler ? handler(req) : HttpResponse{404, "not found\n"};
  }
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.status, " ", StatusText(response.status),
                   "\r\nContent-Type: ", response.content_type,
                   "\r\nContent-Length: ", response.body.size(),
                   "\r\nConnection: close\r\n\r\n", response.body);
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += n;
  }
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace tandem
