#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"

namespace tandem::http {
namespace {

// How long a connection may stay after its response, reading and dropping whatever the
// client still sends, so that closing does not reset the connection under the response.
constexpr absl::Duration kLinger = absl::Milliseconds(500);
// A pause in accepting after an accept error such as EMFILE, so the loop cannot spin.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Returns the offset just past the blank line ending the header section (CRLF or bare
// LF line ends), or npos.
size_t FindHeaderEnd(std::string_view in, size_t from) {
  for (size_t i = from; i < in.size(); ++i) {
    if (in[i] != '\n') continue;
    if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
    if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int MillisUntil(absl::Time deadline, absl::Time now) {
  if (deadline <= now) return 0;
  // Rounds up so the loop does not wake just before a deadline and spin.
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(deadline - now) + 1, 60'000));
}

}  // namespace

struct HttpServer::Connection {
  enum class State { kReading, kWriting, kLingering };
  explicit Connection(int fd) : fd(fd) {}
  ~Connection() { close(fd); }

  const int fd;
  State state = State::kReading;
  absl::Time deadline;
  std::string in;
  size_t scanned = 0;                     // bytes of `in` searched for the header end
  size_t header_end = std::string::npos;  // set once the header section is complete
  size_t content_length = 0;
  HttpRequest request;  // method/path/query once headers parsed
  std::string out;
  size_t out_offset = 0;
};

// Counters, looked up once each and cached. Filled by Create() (the refusal reasons),
// then used by the serving thread only.
struct HttpServer::Stats {
  Stats(metrics::Registry& registry, std::string name)
      : registry(registry), name(std::move(name)) {
    for (const char* reason : {"malformed", "header_too_large", "body_too_large",
                               "timeout", "method", "unsupported"}) {
      Refused(reason);
    }
  }
  metrics::Counter& Requests(int code) {
    metrics::Counter*& c = by_code[code];
    if (c == nullptr) {
      c = &registry.GetCounter("tandem_http_requests_total",
                               "HTTP requests answered, by status code.",
                               {{"server", name}, {"code", std::to_string(code)}});
    }
    return *c;
  }
  metrics::Counter& Refused(const char* reason) {
    metrics::Counter*& c = by_reason[reason];
    if (c == nullptr) {
      c = &registry.GetCounter(
          "tandem_http_refused_total",
          "HTTP requests refused before reaching a handler, by reason.",
          {{"server", name}, {"reason", reason}});
    }
    return *c;
  }

  metrics::Registry& registry;
  const std::string name;
  std::map<int, metrics::Counter*> by_code;
  std::map<std::string_view, metrics::Counter*> by_reason;  // keys: literals
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(Options options) {
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  sockaddr_storage ss{};
  socklen_t len;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  std::string host = options.address;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(options.port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(options.port);
    len = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 or IPv6 address: \"", options.address, "\""));
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) {
    // [::] serves IPv4 too, whatever net.ipv6.bindv6only says.
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(
        err, absl::StrCat("listen on ", options.address, ":", options.port));
  }
  uint16_t port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "eventfd");
  }
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::move(options), fd, wake_fd, port));
}

HttpServer::HttpServer(Options options, int listen_fd, int wake_fd, uint16_t port)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      stats_(options_.registry == nullptr
                 ? nullptr
                 : std::make_unique<Stats>(*options_.registry, options_.name)) {}

HttpServer::~HttpServer() {
  Stop();
  close(listen_fd_);
  close(wake_fd_);
}

void HttpServer::Handle(std::string path, Handler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[std::move(path)] = std::move(handler);
}

absl::Status HttpServer::Start() {
  if (started_ || stopping_.load()) {
    return absl::FailedPreconditionError("HttpServer already started or stopped");
  }
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
}

void HttpServer::Run() {
  std::vector<std::unique_ptr<Connection>> conns;
  std::vector<pollfd> fds;
  absl::Time accept_paused_until = absl::InfinitePast();
  while (true) {
    absl::Time now = absl::Now();
    // Expire connections past their deadline.
    for (auto& conn : conns) {
      if (conn->deadline > now) continue;
      if (conn->state == Connection::State::kReading && stats_) {
        stats_->Refused("timeout").Inc();
      }
      conn.reset();
    }
    std::erase(conns, nullptr);

    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    bool accept_paused = now < accept_paused_until;
    bool accepting = conns.size() < options_.max_connections && !accept_paused;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
    int timeout_ms = accept_paused ? MillisUntil(accept_paused_until, now) : -1;
    for (auto& conn : conns) {
      short events = conn->state == Connection::State::kWriting ? POLLOUT : POLLIN;
      fds.push_back({conn->fd, events, 0});
      int ms = MillisUntil(conn->deadline, now);
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;  // cannot happen with valid fds
    if (stopping_.load() || (fds[0].revents & POLLIN)) break;
    if (n <= 0) continue;

    for (size_t i = 0; i < conns.size(); ++i) {
      short revents = fds[i + 2].revents;
      if (revents == 0) continue;
      Connection& conn = *conns[i];
      bool keep =
          conn.state == Connection::State::kWriting ? OnWritable(conn) : OnReadable(conn);
      if (!keep) conns[i].reset();
    }
    std::erase(conns, nullptr);

    if (fds[1].revents & POLLIN) {
      while (conns.size() < options_.max_connections) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
              errno != ECONNABORTED) {
            accept_paused_until = absl::Now() + kAcceptBackoff;  // e.g. EMFILE
          }
          break;
        }
        auto conn = std::make_unique<Connection>(fd);
        conn->deadline = absl::Now() + options_.read_timeout;
        conns.push_back(std::move(conn));
      }
    }
  }
  conns.clear();  // closes every connection
}

bool HttpServer::OnReadable(Connection& conn) {
  char buf[4096];
  while (true) {
    ssize_t n = read(conn.fd, buf, sizeof(buf));
    if (n == 0) return false;  // the client is gone (or done, when lingering)
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (conn.state == Connection::State::kLingering) continue;  // dropped
    conn.in.append(buf, static_cast<size_t>(n));
    if (conn.header_end == std::string::npos) {
      conn.header_end = FindHeaderEnd(conn.in, conn.scanned > 2 ? conn.scanned - 2 : 0);
      conn.scanned = conn.in.size();
      if (conn.header_end == std::string::npos) {
        if (conn.in.size() > options_.max_header_bytes) {
          Refuse(conn, 431, "header_too_large");
          return OnWritable(conn);
        }
        continue;
      }
      if (conn.header_end > options_.max_header_bytes) {
        Refuse(conn, 431, "header_too_large");
        return OnWritable(conn);
      }
      // Parse the request line and the headers we need.
      std::string_view head(conn.in.data(), conn.header_end);
      std::vector<std::string_view> lines;
      size_t start = 0;
      while (start < head.size()) {
        size_t end = head.find('\n', start);
        std::string_view line = head.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        start = end + 1;
      }
      while (!lines.empty() && lines.back().empty()) lines.pop_back();
      if (lines.empty()) {
        Refuse(conn, 400, "malformed");
        return OnWritable(conn);
      }
      std::string_view request_line = lines[0];
      size_t sp1 = request_line.find(' ');
      size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos ||
          request_line.find(' ', sp2 + 1) != std::string_view::npos) {
        Refuse(conn, 400, "malformed");
        return OnWritable(conn);
      }
      std::string_view method = request_line.substr(0, sp1);
      std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      std::string_view version = request_line.substr(sp2 + 1);
      bool method_ok =
          !method.empty() && std::all_of(method.begin(), method.end(), IsTokenChar);
      bool target_ok = !target.empty() && target[0] == '/' &&
                       std::none_of(target.begin(), target.end(), [](char c) {
                         return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
                       });
      if (!method_ok || !target_ok || (version != "HTTP/1.1" && version != "HTTP/1.0")) {
        Refuse(conn, 400, "malformed");
        return OnWritable(conn);
      }
      bool has_length = false;
      for (size_t i = 1; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos ||
            !std::all_of(line.begin(), line.begin() + colon, IsTokenChar)) {
          Refuse(conn, 400, "malformed");  // also rejects obsolete line folding
          return OnWritable(conn);
        }
        std::string name = absl::AsciiStrToLower(Av(line.substr(0, colon)));
        absl::string_view value = absl::StripAsciiWhitespace(Av(line.substr(colon + 1)));
        if (name == "transfer-encoding") {
          Refuse(conn, 501, "unsupported");
          return OnWritable(conn);
        }
        if (name == "content-length") {
          uint64_t length = 0;
          bool digits = !value.empty() && value.size() <= 18 &&
                        std::all_of(value.begin(), value.end(), absl::ascii_isdigit);
          if (!digits || !absl::SimpleAtoi(value, &length) ||
              (has_length && length != conn.content_length)) {
            Refuse(conn, 400, "malformed");
            return OnWritable(conn);
          }
          has_length = true;
          conn.content_length = length;
        }
      }
      if (conn.content_length > options_.max_body_bytes) {
        Refuse(conn, 413, "body_too_large");
        return OnWritable(conn);
      }
      conn.request.method = std::string(method);
      size_t q = target.find('?');
      conn.request.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos)
        conn.request.query = std::string(target.substr(q + 1));
    }
    if (conn.in.size() - conn.header_end >= conn.content_length) {
      conn.request.body = conn.in.substr(conn.header_end, conn.content_length);
      Dispatch(conn, std::move(conn.request));
      return OnWritable(conn);
    }
  }
}

void HttpServer::Dispatch(Connection& conn, HttpRequest request) {
  if (request.method != "GET" && request.method != "POST") {
    Refuse(conn, 405, "method");
    return;
  }
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    auto it = handlers_.find(request.path);
    if (it != handlers_.end()) handler = it->second;
  }
  if (!handler) {
    Respond(conn, HttpResponse{404, "text/plain", "not found\n"});
    return;
  }
  Respond(conn, handler(request));
}

void HttpServer::Refuse(Connection& conn, int status, const char* reason) {
  if (stats_) stats_->Refused(reason).Inc();
  Respond(conn,
          HttpResponse{status, "text/plain", absl::StrCat(ReasonPhrase(status), "\n")});
}

void HttpServer::Respond(Connection& conn, const HttpResponse& response) {
  if (stats_) stats_->Requests(response.status).Inc();
  // Handlers are trusted, but a header value must never split the response.
  absl::string_view content_type = response.content_type;
  if (content_type.find_first_of("\r\n") != absl::string_view::npos) {
    content_type = "text/plain";
  }
  conn.out = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
      "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", response.body.size(),
      response.status == 405 ? "\r\nAllow: GET, POST" : "",
      "\r\nConnection: close\r\n\r\n", response.body);
  conn.out_offset = 0;
  conn.in.clear();
  conn.in.shrink_to_fit();
  conn.state = Connection::State::kWriting;
  conn.deadline = absl::Now() + options_.write_timeout;
}

bool HttpServer::OnWritable(Connection& conn) {
  while (conn.out_offset < conn.out.size()) {
    ssize_t n = send(conn.fd, conn.out.data() + conn.out_offset,
                     conn.out.size() - conn.out_offset, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;  // wait for POLLOUT
    }
    conn.out_offset += static_cast<size_t>(n);
  }
  // Sent: half-close, then drop what the client still sends until it closes.
  shutdown(conn.fd, SHUT_WR);
  conn.out.clear();
  conn.out.shrink_to_fit();
  conn.state = Connection::State::kLingering;
  conn.deadline = absl::Now() + kLinger;
  return true;
}

absl::Status SetListenAddress(const std::string& host_port,
                              HttpServer::Options* options) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", host_port, "\": expected host:port or [v6]:port"));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", host_port, "\": bad port"));
  }
  std::string host = host_port.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  options->address = host;
  options->port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace tandem::http
