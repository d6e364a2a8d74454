#include "agent/app_socket_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace tandem::agent {
namespace {

// The kubelet says "kube-probe/<version>"; apps that look for probes match the prefix.
constexpr char kUserAgent[] = "kube-probe/tandem";
// How much of the answer may come before its final status line is complete.
constexpr size_t kMaxHead = 16 * 1024;

using Failure = std::optional<AppProbeResult>;  // nullopt: the step succeeded

AppProbeResult Fail(AppProbeOutcome outcome, std::string detail) {
  return AppProbeResult{outcome, std::move(detail)};
}

// Waits until `fd` is ready for `events`; false once `deadline` has passed.
bool WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int ms = static_cast<int>(std::min<int64_t>(
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 60'000));
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, ms);
    // Readiness, an error or a hang-up: the next call on the socket says which.
    if (n > 0 || (n < 0 && errno != EINTR)) return true;
  }
}

// The one client context, made once: the kubelet does not check the app's certificate
// either (it has no trust anchor for it).
SSL_CTX* ClientContext() {
  static SSL_CTX* const ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    return c;
  }();
  return ctx;
}

std::string HostPort(const AppProbeSpec& spec) {
  return spec.host.find(':') == std::string::npos
             ? absl::StrCat(spec.host, ":", spec.port)
             : absl::StrCat("[", spec.host, "]:", spec.port);
}

// One connection to the app, plain or TLS. Every call ends by `deadline`.
class Connection {
 public:
  explicit Connection(absl::Time deadline) : deadline_(deadline) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
  }

  Failure Connect(const AppProbeSpec& spec) {
    std::string where = absl::StrCat("connect ", HostPort(spec));
    sockaddr_storage ss{};
    socklen_t len;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, spec.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(spec.port);
      len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, spec.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(spec.port);
      len = sizeof(*v6);
    } else {
      return Fail(AppProbeOutcome::kConnectError, where + ": not an IP address");
    }
    fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return ConnectFailed(where, errno);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0) return std::nullopt;
    if (errno != EINPROGRESS) return ConnectFailed(where, errno);
    if (!WaitFor(fd_, POLLOUT, deadline_)) {
      return Fail(AppProbeOutcome::kTimeout, where + ": timed out");
    }
    int err = 0;
    socklen_t err_len = sizeof(err);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err != 0) return ConnectFailed(where, err);
    return std::nullopt;
  }

  Failure StartTls() {
    ERR_clear_error();  // the error queue is per thread; start from a clean one
    ssl_ = SSL_new(ClientContext());
    if (ssl_ == nullptr || !SSL_set_fd(ssl_, fd_)) {
      return Fail(AppProbeOutcome::kTls, "TLS handshake: " + TlsError(0));
    }
    while (true) {
      int ret = SSL_connect(ssl_);
      if (ret == 1) return std::nullopt;
      if (Failure failed = WaitForTls(ret, "TLS handshake")) return failed;
    }
  }

  Failure Send(absl::string_view data) {
    while (!data.empty()) {
      if (ssl_ != nullptr) {
        int ret = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (ret > 0) {
          data.remove_prefix(static_cast<size_t>(ret));
        } else if (Failure failed = WaitForTls(ret, "send")) {
          return failed;
        }
        continue;
      }
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitFor(fd_, POLLOUT, deadline_)) {
          return Fail(AppProbeOutcome::kTimeout, "send: timed out");
        }
      } else {
        return Fail(AppProbeOutcome::kBadResponse,
                    absl::StrCat("send: ", std::strerror(errno)));
      }
    }
    return std::nullopt;
  }

  // Appends what arrives next to *in, or sets *eof when the app closed.
  Failure Receive(std::string* in, bool* eof) {
    char buf[4096];
    while (true) {
      if (ssl_ != nullptr) {
        int ret = SSL_read(ssl_, buf, sizeof(buf));
        if (ret > 0) {
          in->append(buf, static_cast<size_t>(ret));
          return std::nullopt;
        }
        int err = SSL_get_error(ssl_, ret);
        // A close without close_notify ends the answer as well (HTTP/1.1 with
        // Connection: close is delimited by the close itself).
        if (err == SSL_ERROR_ZERO_RETURN ||
            (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
          *eof = true;
          return std::nullopt;
        }
        if (Failure failed = WaitForTls(ret, "read")) return failed;
        continue;
      }
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        in->append(buf, static_cast<size_t>(n));
        return std::nullopt;
      }
      if (n == 0) {
        *eof = true;
        return std::nullopt;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return Fail(AppProbeOutcome::kBadResponse,
                    absl::StrCat("read: ", std::strerror(errno)));
      }
      if (!WaitFor(fd_, POLLIN, deadline_)) {
        return Fail(AppProbeOutcome::kTimeout, "no answer: timed out");
      }
    }
  }

 private:
  static AppProbeResult ConnectFailed(const std::string& where, int err) {
    return Fail(
        err == ECONNREFUSED ? AppProbeOutcome::kRefused : AppProbeOutcome::kConnectError,
        absl::StrCat(where, ": ", std::strerror(err)));
  }

  std::string TlsError(int ssl_error) const {
    if (uint32_t packed = ERR_get_error(); packed != 0) {
      char text[256];
      ERR_error_string_n(packed, text, sizeof(text));
      return text;
    }
    if (ssl_error == SSL_ERROR_SYSCALL) {
      return errno != 0 ? std::strerror(errno) : "connection closed";
    }
    return absl::StrCat("SSL error ", ssl_error);
  }

  // After an SSL call returned `ret` <= 0: waits for what it needs and returns
  // nullopt (call again), or the failure.
  Failure WaitForTls(int ret, absl::string_view what) {
    int err = SSL_get_error(ssl_, ret);
    short events = err == SSL_ERROR_WANT_READ    ? POLLIN
                   : err == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                 : 0;
    if (events == 0) {
      return Fail(AppProbeOutcome::kTls, absl::StrCat(what, ": ", TlsError(err)));
    }
    if (!WaitFor(fd_, events, deadline_)) {
      return Fail(AppProbeOutcome::kTimeout, absl::StrCat(what, ": timed out"));
    }
    return std::nullopt;
  }

  const absl::Time deadline_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

std::string Request(const AppProbeSpec& spec) {
  std::string host = HostPort(spec);
  std::string user_agent = kUserAgent;
  std::string accept = "*/*";
  std::string others;
  for (const auto& [name, value] : spec.headers) {
    if (absl::EqualsIgnoreCase(name, "Host")) {
      host = value;
    } else if (absl::EqualsIgnoreCase(name, "User-Agent")) {
      user_agent = value;
    } else if (absl::EqualsIgnoreCase(name, "Accept")) {
      accept = value;
    } else {
      absl::StrAppend(&others, name, ": ", value, "\r\n");
    }
  }
  return absl::StrCat("GET ", spec.path, " HTTP/1.1\r\nHost: ", host,
                      "\r\nUser-Agent: ", user_agent, "\r\nAccept: ", accept, "\r\n",
                      others, "Connection: close\r\n\r\n");
}

enum class Head { kNeedMore, kMalformed, kInformational, kFinal };

// Reads the status line at the start of `in`. For a 1xx answer (not the final one, as
// an HTTP client skips it) *consumed is the length of its whole header block.
Head ParseStatus(absl::string_view in, int* status, size_t* consumed) {
  size_t eol = in.find('\n');
  if (eol == absl::string_view::npos) return Head::kNeedMore;
  absl::string_view line = absl::StripSuffix(in.substr(0, eol), "\r");
  // "HTTP/1.x NNN" then the end of the line or " reason".
  if (line.size() < 12 || !absl::StartsWith(line, "HTTP/1.") ||
      !absl::ascii_isdigit(line[7]) || line[8] != ' ' ||
      !std::all_of(line.begin() + 9, line.begin() + 12,
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      (line.size() > 12 && line[12] != ' ')) {
    return Head::kMalformed;
  }
  *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (*status < 100) return Head::kMalformed;
  if (*status >= 200 || *status == 101) return Head::kFinal;
  // The block ends at the first empty line (CRLF or bare LF line ends).
  size_t crlf = in.find("\n\r\n", eol);
  size_t lf = in.find("\n\n", eol);
  size_t end = std::min(crlf == absl::string_view::npos ? crlf : crlf + 3,
                        lf == absl::string_view::npos ? lf : lf + 2);
  if (end != absl::string_view::npos) {
    *consumed = end;
    return Head::kInformational;
  }
  return Head::kNeedMore;
}

}  // namespace

AppProbeResult RunSocketProbe(const AppProbeSpec& spec, absl::Time deadline) {
  Connection conn(deadline);
  if (Failure failed = conn.Connect(spec)) return *failed;
  if (spec.kind != AppProbeSpec::Kind::kHttpGet) return {AppProbeOutcome::kSuccess, ""};
  if (spec.https) {
    if (Failure failed = conn.StartTls()) return *failed;
  }
  if (Failure failed = conn.Send(Request(spec))) return *failed;

  std::string in;
  bool eof = false;
  while (true) {
    int status = 0;
    size_t consumed = 0;
    switch (ParseStatus(in, &status, &consumed)) {
      case Head::kFinal:
        if (status >= 200 && status < 400) {
          return {AppProbeOutcome::kSuccess, absl::StrCat("HTTP ", status)};
        }
        return Fail(AppProbeOutcome::kHttpStatus, absl::StrCat("HTTP ", status));
      case Head::kMalformed:
        return Fail(AppProbeOutcome::kBadResponse, "not an HTTP/1.x status line");
      case Head::kInformational:
        in.erase(0, consumed);
        continue;
      case Head::kNeedMore:
        break;
    }
    if (eof) {
      return Fail(AppProbeOutcome::kBadResponse, in.empty()
                                                     ? "closed without an answer"
                                                     : "closed within the answer's head");
    }
    if (in.size() > kMaxHead) {
      return Fail(AppProbeOutcome::kBadResponse, "no status line in the first 16 KiB");
    }
    if (Failure failed = conn.Receive(&in, &eof)) return *failed;
  }
}

}  // namespace tandem::agent
