// BoringSSL code: never include gRPC headers here.
#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
#include "common/pki/certificate.h"
#include "common/pki/private_key.h"

namespace tandem::http {
namespace {

// How long a connection may stay after its response, reading and dropping whatever the
// client still sends, so that closing does not reset the connection under the response.
constexpr absl::Duration kLinger = absl::Milliseconds(500);
// A pause in accepting after an accept error such as EMFILE, so the loop cannot spin.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);
// Connections accepted per loop iteration at most.
constexpr int kAcceptBatch = 256;

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
    case 504:
      return "Gateway Timeout";
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

// Selects http/1.1 when the client offers it; a client offering only other protocols
// (e.g. h2 alone) gets no ALPN answer and may still speak HTTP/1.1.
int SelectHttp11(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                 unsigned in_len, void*) {
  static constexpr std::string_view kHttp11 = "http/1.1";
  for (unsigned i = 0; i < in_len;) {
    uint8_t len = in[i];
    if (i + 1 + len > in_len) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == kHttp11) {
      *out = in + i + 1;
      *out_len = len;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int MillisUntil(absl::Time deadline, absl::Time now) {
  if (deadline <= now) return 0;
  // Rounds up so the loop does not wake just before a deadline and spin.
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(deadline - now) + 1, 60'000));
}

}  // namespace

// One published HTTPS context. Immutable after Build; each SSL holds its own reference
// to the SSL_CTX, so a swap never touches an open connection.
struct HttpServer::TlsContext {
  // `result` receives the metric label: accepted or why the credentials were refused.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Build(
      const TlsCredentials& credentials, absl::Time now, const char** result);

  bssl::UniquePtr<SSL_CTX> ctx;
};

absl::StatusOr<std::shared_ptr<const HttpServer::TlsContext>> HttpServer::TlsContext::Build(
    const TlsCredentials& credentials, absl::Time now, const char** result) {
  absl::StatusOr<std::vector<pki::Certificate>> chain =
      pki::Certificate::ChainFromPem(credentials.cert_chain_pem);
  if (!chain.ok()) {
    *result = "bad_certificate";
    return absl::InvalidArgumentError(
        absl::StrCat("TLS credentials: certificate chain: ", chain.status().message()));
  }
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(credentials.key_pem);
  if (!key.ok()) {
    *result = "bad_key";
    return absl::InvalidArgumentError(
        absl::StrCat("TLS credentials: private key: ", key.status().message()));
  }
  const pki::Certificate& leaf = chain->front();
  if (!leaf.MatchesKey(*key)) {
    *result = "key_mismatch";
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS credentials: the private key does not match the certificate (serial ",
        leaf.SerialHex(), ")"));
  }
  if (leaf.not_after() <= now) {
    *result = "expired";
    return absl::InvalidArgumentError(
        absl::StrCat("TLS credentials: the certificate expired at ",
                     absl::FormatTime(absl::RFC3339_sec, leaf.not_after(),
                                      absl::UTCTimeZone())));
  }
  auto context = std::make_shared<TlsContext>();
  context->ctx.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = context->ctx.get();
  // TLS 1.3 only, like every other tandem endpoint. The kube-apiserver's webhook
  // client is Go's crypto/tls, which offers TLS 1.3 by default since Go 1.13 (client-go
  // sets only a TLS 1.2 minimum), so the API server can call us.
  bool ok = ctx != nullptr && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) &&
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) &&
            SSL_CTX_set1_curves_list(ctx, "X25519:P-256") &&
            SSL_CTX_use_certificate(ctx, leaf.get()) &&
            SSL_CTX_use_PrivateKey(ctx, key->get());
  for (size_t i = 1; ok && i < chain->size(); ++i) {
    ok = SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get());
  }
  ERR_clear_error();
  if (!ok) {
    *result = "bad_certificate";
    return absl::InvalidArgumentError("TLS credentials: BoringSSL refused the certificate");
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectHttp11, nullptr);
  // Partial writes: a response larger than the socket buffer goes out across POLLOUTs.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  *result = "accepted";
  return context;
}

struct HttpServer::Connection {
  // kDeferred: the request went to a deferred handler, whose Responder has not been
  // called yet; the connection is polled only for errors and hang-ups.
  enum class State { kHandshaking, kReading, kDeferred, kWriting, kLingering };
  Connection(int fd, uint64_t id) : fd(fd), id(id) {}
  ~Connection() {
    ssl.reset();
    close(fd);
  }

  const int fd;
  const uint64_t id;  // names the connection to Responders; never reused
  bssl::UniquePtr<SSL> ssl;  // HTTPS only
  // Poll events a TLS operation is waiting for (SSL_ERROR_WANT_READ/WRITE); 0: the
  // state's own (POLLOUT when writing, none when deferred, else POLLIN).
  short want = 0;
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
// then used by the serving thread only, except `tls_credentials`: filled here, then
// only read (any thread, SetTlsCredentials).
struct HttpServer::Stats {
  Stats(metrics::Registry& registry, std::string name, bool tls)
      : registry(registry), name(std::move(name)) {
    for (const char* reason : {"malformed", "header_too_large", "body_too_large",
                               "timeout", "method", "unsupported", "shed"}) {
      Refused(reason);
    }
    if (!tls) return;
    Refused("tls_handshake");
    for (const char* result :
         {"accepted", "bad_certificate", "bad_key", "key_mismatch", "expired"}) {
      tls_credentials[result] = &registry.GetCounter(
          "tandem_http_tls_credentials_total",
          "HTTPS certificate updates, by result (accepted or why refused).",
          {{"server", this->name}, {"result", result}});
    }
  }
  void CountTlsCredentials(std::string_view result) const {
    auto it = tls_credentials.find(result);
    if (it != tls_credentials.end()) it->second->Inc();
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
  std::map<std::string_view, metrics::Counter*> tls_credentials;  // keys: literals
};

// Carries deferred responses from any thread to the serving thread. Responders hold it
// by shared_ptr, so a late response after the server is gone finds it closed.
struct HttpServer::Mailbox {
  explicit Mailbox(int wake_fd) : wake_fd(wake_fd) {}

  void Post(uint64_t connection_id, HttpResponse response) {
    absl::MutexLock lock(&mu);
    if (closed) return;
    responses.emplace_back(connection_id, std::move(response));
    uint64_t one = 1;
    while (write(wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
  std::vector<std::pair<uint64_t, HttpResponse>> Take() {
    absl::MutexLock lock(&mu);
    return std::exchange(responses, {});
  }
  // After this, Post() drops its response and no longer touches wake_fd.
  void Close() {
    absl::MutexLock lock(&mu);
    closed = true;
    responses.clear();
  }

  const int wake_fd;  // owned by the server; valid until Close()
  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::vector<std::pair<uint64_t, HttpResponse>> responses ABSL_GUARDED_BY(mu);
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
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
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
  std::optional<TlsCredentials> tls = std::move(options.tls);
  options.tls.reset();  // the server keeps the built context, not the key's PEM
  auto server = std::unique_ptr<HttpServer>(
      new HttpServer(std::move(options), fd, wake_fd, port, tls.has_value()));
  if (tls.has_value()) {
    if (absl::Status s = server->SetTlsCredentials(*tls); !s.ok()) return s;
  }
  return server;
}

HttpServer::HttpServer(Options options, int listen_fd, int wake_fd, uint16_t port,
                       bool tls)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      tls_enabled_(tls),
      stats_(options_.registry == nullptr
                 ? nullptr
                 : std::make_unique<Stats>(*options_.registry, options_.name, tls)),
      mailbox_(std::make_shared<Mailbox>(wake_fd)) {}

HttpServer::~HttpServer() {
  Stop();  // closes the mailbox, so no Responder writes to wake_fd_ after this
  close(listen_fd_);
  close(wake_fd_);
}

absl::Status HttpServer::SetTlsCredentials(const TlsCredentials& credentials) {
  if (!tls_enabled_) {
    return absl::FailedPreconditionError(
        "TLS credentials for a plaintext server (set Options::tls at Create)");
  }
  const char* result = "accepted";
  absl::StatusOr<std::shared_ptr<const TlsContext>> built =
      TlsContext::Build(credentials, absl::Now(), &result);
  if (stats_) stats_->CountTlsCredentials(result);
  if (!built.ok()) return built.status();
  std::shared_ptr<const TlsContext> old;  // freed after the lock is released
  absl::MutexLock lock(&tls_mu_);
  old = std::exchange(tls_, *std::move(built));
  return absl::OkStatus();
}

void HttpServer::Handle(std::string path, Handler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[std::move(path)] = Route{std::move(handler), nullptr};
}

void HttpServer::HandleDeferred(std::string path, DeferredHandler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[std::move(path)] = Route{nullptr, std::move(handler)};
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
  mailbox_->Close();
}

void HttpServer::Run() {
  std::vector<std::unique_ptr<Connection>> conns;
  std::vector<pollfd> fds;
  absl::Time accept_paused_until = absl::InfinitePast();
  while (true) {
    absl::Time now = absl::Now();
    // Expire connections past their deadline; a deferred handler that never answered
    // gets 504 sent for it.
    for (auto& conn : conns) {
      if (conn->deadline > now) continue;
      if (conn->state == Connection::State::kDeferred) {
        Respond(*conn, HttpResponse{504, "text/plain", "Gateway Timeout\n"});
        if (!OnWritable(*conn)) conn.reset();
        continue;
      }
      if ((conn->state == Connection::State::kReading ||
           conn->state == Connection::State::kHandshaking) &&
          stats_) {
        stats_->Refused("timeout").Inc();
      }
      conn.reset();
    }
    std::erase(conns, nullptr);

    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({-1, POLLIN, 0});  // the listener, set below
    bool accept_paused = now < accept_paused_until;
    int timeout_ms = accept_paused ? MillisUntil(accept_paused_until, now) : -1;
    bool any_sheddable = false;
    for (auto& conn : conns) {
      any_sheddable = any_sheddable || Sheddable(*conn);
      short events = conn->want != 0                               ? conn->want
                     : conn->state == Connection::State::kWriting  ? POLLOUT
                     : conn->state == Connection::State::kDeferred ? 0
                                                                   : POLLIN;
      fds.push_back({conn->fd, events, 0});
      int ms = MillisUntil(conn->deadline, now);
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    // Full of connections still answering (writing, deferred): new ones wait in the
    // backlog, since shedding one of those would drop a response.
    if (!accept_paused && (conns.size() < options_.max_connections || any_sheddable)) {
      fds[1].fd = listen_fd_;
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;  // cannot happen with valid fds
    if (stopping_.load()) break;
    if (n <= 0) continue;

    for (size_t i = 0; i < conns.size(); ++i) {
      short revents = fds[i + 2].revents;
      if (revents == 0) continue;
      Connection& conn = *conns[i];
      bool keep;
      switch (conn.state) {
        case Connection::State::kHandshaking:
          keep = OnHandshake(conn);
          break;
        case Connection::State::kWriting:
          keep = OnWritable(conn);
          break;
        case Connection::State::kDeferred:
          keep = false;  // polled for no event: an error or hang-up; nobody to answer
          break;
        default:
          keep = OnReadable(conn);
      }
      if (!keep) conns[i].reset();
    }
    std::erase(conns, nullptr);

    if (fds[0].revents & POLLIN) {
      uint64_t count;
      while (read(wake_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
      }
      DeliverDeferred(conns);
    }

    if (fds[1].revents & POLLIN) {
      // Bounded, so a connect flood cannot keep the loop from its other connections.
      for (int accepted = 0; accepted < kAcceptBatch; ++accepted) {
        if (conns.size() >= options_.max_connections &&
            FindSheddable(conns) == conns.end()) {
          break;
        }
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) && Shed(conns)) {
          // Out of descriptors: an idle connection gives its own to the new one.
          fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        if (fd < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
              errno != ECONNABORTED) {
            accept_paused_until = absl::Now() + kAcceptBackoff;  // e.g. EMFILE
          }
          break;
        }
        // Every slot taken: the oldest connection without a complete request goes,
        // not the new one, so idle and slow clients cannot lock out a probe.
        if (conns.size() >= options_.max_connections) Shed(conns);
        auto conn = std::make_unique<Connection>(fd, next_connection_id_++);
        conn->deadline = absl::Now() + options_.read_timeout;  // handshake included
        if (tls_enabled_) {
          std::shared_ptr<const TlsContext> tls;
          {
            absl::MutexLock lock(&tls_mu_);
            tls = tls_;
          }
          conn->ssl.reset(SSL_new(tls->ctx.get()));  // holds its own SSL_CTX reference
          if (!conn->ssl || !SSL_set_fd(conn->ssl.get(), fd)) {
            ERR_clear_error();
            continue;  // out of memory: drop this one
          }
          SSL_set_accept_state(conn->ssl.get());
          conn->state = Connection::State::kHandshaking;
        }
        conns.push_back(std::move(conn));
      }
    }
  }
  conns.clear();  // closes every connection
}

long HttpServer::TlsResult(Connection& conn, int n, bool reading) {
  if (n > 0) return n;
  int err = SSL_get_error(conn.ssl.get(), n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    conn.want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    return kWouldBlock;
  }
  ERR_clear_error();
  // A clean close_notify ends a read like EOF; a write that meets it has failed.
  return reading && err == SSL_ERROR_ZERO_RETURN ? 0 : kFailed;
}

long HttpServer::ReadSome(Connection& conn, char* buf, size_t len) {
  // Lingering reads only drop bytes: TLS records need no decrypting for that.
  if (conn.ssl && conn.state != Connection::State::kLingering) {
    conn.want = 0;
    return TlsResult(
        conn, SSL_read(conn.ssl.get(), buf, static_cast<int>(std::min<size_t>(len, 1 << 30))),
        /*reading=*/true);
  }
  while (true) {
    ssize_t n = read(conn.fd, buf, len);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
  }
}

long HttpServer::WriteSome(Connection& conn, const char* data, size_t len) {
  if (conn.ssl) {
    conn.want = 0;
    return TlsResult(conn,
                     SSL_write(conn.ssl.get(), data,
                               static_cast<int>(std::min<size_t>(len, 1 << 30))),
                     /*reading=*/false);
  }
  while (true) {
    ssize_t n = send(conn.fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
  }
}

bool HttpServer::Sheddable(const Connection& conn) {
  return conn.state == Connection::State::kHandshaking ||
         conn.state == Connection::State::kReading ||
         conn.state == Connection::State::kLingering;
}

std::vector<std::unique_ptr<HttpServer::Connection>>::iterator HttpServer::FindSheddable(
    std::vector<std::unique_ptr<Connection>>& conns) {
  // `conns` is in accept order. A connection still reading goes before one lingering
  // after its response (most likely a client that got its answer and is closing).
  auto reading = std::find_if(conns.begin(), conns.end(), [](const auto& conn) {
    return conn->state == Connection::State::kHandshaking ||
           conn->state == Connection::State::kReading;
  });
  if (reading != conns.end()) return reading;
  return std::find_if(conns.begin(), conns.end(), [](const auto& conn) {
    return conn->state == Connection::State::kLingering;
  });
}

bool HttpServer::Shed(std::vector<std::unique_ptr<Connection>>& conns) {
  auto it = FindSheddable(conns);
  if (it == conns.end()) return false;
  if (stats_ && (*it)->state != Connection::State::kLingering)
    stats_->Refused("shed").Inc();
  conns.erase(it);  // closes it
  return true;
}

bool HttpServer::OnHandshake(Connection& conn) {
  conn.want = 0;
  int rc = SSL_do_handshake(conn.ssl.get());
  if (rc == 1) {
    conn.state = Connection::State::kReading;
    // The request may have arrived with the client's last handshake flight.
    return OnReadable(conn);
  }
  int err = SSL_get_error(conn.ssl.get(), rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    conn.want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    return true;
  }
  ERR_clear_error();
  // A protocol failure (plaintext, no shared version or cipher) is counted; a client
  // that just closed is not.
  if (err == SSL_ERROR_SSL && stats_) stats_->Refused("tls_handshake").Inc();
  return false;
}

bool HttpServer::OnReadable(Connection& conn) {
  char buf[4096];
  while (true) {
    long n = ReadSome(conn, buf, sizeof(buf));
    if (n == 0 || n == kFailed) return false;  // the client is gone (or done, lingering)
    if (n == kWouldBlock) return true;
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
      return conn.state == Connection::State::kDeferred || OnWritable(conn);
    }
  }
}

void HttpServer::Dispatch(Connection& conn, HttpRequest request) {
  if (request.method != "GET" && request.method != "POST") {
    Refuse(conn, 405, "method");
    return;
  }
  Route route;
  {
    absl::MutexLock lock(&mu_);
    auto it = handlers_.find(request.path);
    if (it != handlers_.end()) route = it->second;
  }
  if (route.deferred) {
    conn.state = Connection::State::kDeferred;
    conn.deadline = absl::Now() + options_.deferred_timeout;
    conn.in.clear();
    conn.in.shrink_to_fit();
    route.deferred(request, [mailbox = mailbox_, id = conn.id](HttpResponse response) {
      mailbox->Post(id, std::move(response));
    });
    return;
  }
  if (!route.handler) {
    Respond(conn, HttpResponse{404, "text/plain", "not found\n"});
    return;
  }
  Respond(conn, route.handler(request));
}

void HttpServer::DeliverDeferred(std::vector<std::unique_ptr<Connection>>& conns) {
  for (auto& [id, response] : mailbox_->Take()) {
    // Only the first response finds its connection deferred; later ones, and those for
    // a connection that hung up or timed out, are dropped.
    auto it = std::find_if(conns.begin(), conns.end(), [id = id](const auto& conn) {
      return conn && conn->id == id && conn->state == Connection::State::kDeferred;
    });
    if (it == conns.end()) continue;
    Respond(**it, response);
    if (!OnWritable(**it)) it->reset();
  }
  std::erase(conns, nullptr);
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
    long n = WriteSome(conn, conn.out.data() + conn.out_offset,
                       conn.out.size() - conn.out_offset);
    if (n == kFailed) return false;
    if (n == kWouldBlock) return true;  // wait for the poll events asked for
    conn.out_offset += static_cast<size_t>(n);
  }
  // Sent: half-close, then drop what the client still sends until it closes. Over TLS
  // a close_notify first, best effort: the response is already framed by its length.
  if (conn.ssl) {
    SSL_shutdown(conn.ssl.get());
    ERR_clear_error();
    conn.want = 0;
  }
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
