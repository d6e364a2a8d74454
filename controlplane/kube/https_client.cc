// BoringSSL code: never include gRPC headers here.
#include "controlplane/kube/https_client.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/tcp_connect.h"
#include "controlplane/kube/chunked_decoder.h"

namespace tandem::controlplane {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

constexpr size_t kMaxHeadBytes = 64 * 1024;

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

absl::Status SetIoTimeout(int fd, absl::Duration left) {
  if (left <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError("HTTPS request timed out");
  }
  timeval tv = absl::ToTimeval(std::max(left, absl::Milliseconds(1)));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return absl::OkStatus();
}

struct ResponseHead {
  int status = 0;
  std::optional<size_t> content_length;
  bool chunked = false;
  size_t size = 0;  // bytes of the head, the blank line included
};

// Parses the status line and headers at the start of `raw`, or returns nullopt when
// they are not complete yet (`eof`: no more will come). Errors are malformed heads.
absl::StatusOr<std::optional<ResponseHead>> ParseHead(absl::string_view raw, bool eof) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == absl::string_view::npos) {
    if (eof) return absl::UnavailableError("connection closed before the headers");
    if (raw.size() > kMaxHeadBytes)
      return absl::UnavailableError("response head too large");
    return std::nullopt;
  }
  std::vector<absl::string_view> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
  ResponseHead head;
  head.size = head_end + 4;
  absl::string_view status_line = lines[0];
  if ((!absl::StartsWith(status_line, "HTTP/1.1 ") &&
       !absl::StartsWith(status_line, "HTTP/1.0 ")) ||
      status_line.size() < 12 ||
      !absl::SimpleAtoi(status_line.substr(9, 3), &head.status) || head.status < 100 ||
      head.status > 599) {
    return absl::UnavailableError("malformed HTTP status line");
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) {
      return absl::UnavailableError("malformed HTTP header");
    }
    std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    if (name == "content-length") {
      size_t n;
      if (!absl::SimpleAtoi(value, &n) ||
          (head.content_length && *head.content_length != n)) {
        return absl::UnavailableError("bad Content-Length");
      }
      head.content_length = n;
    } else if (name == "transfer-encoding") {
      head.chunked = absl::EqualsIgnoreCase(value, "chunked");
      if (!head.chunked) return absl::UnavailableError("unsupported Transfer-Encoding");
    }
  }
  return head;
}

// Parses a complete response in `raw`, or returns nullopt when more bytes are needed
// (`eof`: no more will come). Errors are malformed responses.
absl::StatusOr<std::optional<HttpsResponse>> ParseResponse(const std::string& raw,
                                                           bool eof) {
  absl::StatusOr<std::optional<ResponseHead>> head = ParseHead(raw, eof);
  if (!head.ok()) return head.status();
  if (!head->has_value()) return std::nullopt;
  HttpsResponse response;
  response.status = (*head)->status;
  absl::string_view rest = absl::string_view(raw).substr((*head)->size);
  if ((*head)->chunked) {
    ChunkedDecoder decoder;
    if (absl::Status s = decoder.Feed(rest, &response.body); !s.ok()) return s;
    if (decoder.done()) return response;  // trailers, if any, are ignored
    if (eof) return absl::UnavailableError("connection closed inside a chunked body");
    return std::nullopt;
  }
  if (std::optional<size_t> length = (*head)->content_length) {
    if (rest.size() < *length) {
      if (eof) return absl::UnavailableError("connection closed inside the body");
      return std::nullopt;
    }
    response.body = std::string(rest.substr(0, *length));
    return response;
  }
  if (!eof) return std::nullopt;
  response.body = std::string(rest);
  return response;
}

std::string SslErrorText() {
  uint32_t e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

}  // namespace

struct HttpsClient::Tls {
  bssl::UniquePtr<SSL_CTX> ctx;
};

HttpsClient::HttpsClient(Options options, std::string host, std::string port,
                         std::unique_ptr<Tls> tls)
    : options_(std::move(options)),
      host_(std::move(host)),
      port_(std::move(port)),
      tls_(std::move(tls)) {}
HttpsClient::~HttpsClient() = default;

absl::StatusOr<std::unique_ptr<HttpsClient>> HttpsClient::Create(Options options) {
  std::string host, port;
  const std::string& a = options.address;
  if (absl::StartsWith(a, "[")) {
    size_t close_bracket = a.find("]:");
    if (close_bracket == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("address \"", a, "\": [v6]:port"));
    }
    host = a.substr(1, close_bracket - 1);
    port = a.substr(close_bracket + 2);
  } else {
    size_t colon = a.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("address \"", a, "\": host:port"));
    }
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
  }
  int port_number;
  if (host.empty() || !absl::SimpleAtoi(port, &port_number) || port_number <= 0 ||
      port_number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", a, "\": host:port"));
  }
  if (options.server_name.empty()) options.server_name = host;

  auto tls = std::make_unique<Tls>();
  tls->ctx.reset(SSL_CTX_new(TLS_method()));
  if (!tls->ctx || !SSL_CTX_set_min_proto_version(tls->ctx.get(), TLS1_2_VERSION)) {
    return absl::InternalError("SSL_CTX_new failed");
  }
  X509_STORE* store = SSL_CTX_get_cert_store(tls->ctx.get());
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(options.ca_pem.data(), options.ca_pem.size()));
  int roots = 0;
  while (bssl::UniquePtr<X509> cert{
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (!X509_STORE_add_cert(store, cert.get())) {
      return absl::InvalidArgumentError("API server CA: cannot add a certificate");
    }
    ++roots;
  }
  ERR_clear_error();
  if (roots == 0) {
    return absl::InvalidArgumentError("API server CA: no PEM certificate");
  }
  SSL_CTX_set_verify(tls->ctx.get(), SSL_VERIFY_PEER, nullptr);
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(options), std::move(host),
                                                      std::move(port), std::move(tls)));
}

absl::StatusOr<HttpsResponse> HttpsClient::Post(
    const std::string& path, const std::string& content_type, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) const {
  return Send("POST", path, content_type, body, headers);
}

// A TLS connection with the request sent.
struct HttpsClient::Connection {
  explicit Connection(int fd) : fd(fd) {}
  Fd fd;
  bssl::UniquePtr<SSL> ssl;
};

absl::StatusOr<std::unique_ptr<HttpsClient::Connection>> HttpsClient::Open(
    const std::string& method, const std::string& path, const std::string& content_type,
    const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers,
    absl::Time deadline) const {
  if (method.empty() || path.empty() || path[0] != '/' ||
      (method + path).find_first_of(" \r\n") != std::string::npos ||
      content_type.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("bad method, path or content type");
  }
  for (const auto& [name, value] : headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError("header with CR/LF");
    }
  }
  absl::StatusOr<int> fd_or = ConnectTcp(host_, port_, deadline);
  if (!fd_or.ok()) return fd_or.status();
  auto conn = std::make_unique<Connection>(*fd_or);
  const int fd = conn->fd.get();
  if (absl::Status s = SetIoTimeout(fd, deadline - absl::Now()); !s.ok()) return s;

  conn->ssl.reset(SSL_new(tls_->ctx.get()));
  SSL* ssl = conn->ssl.get();
  if (ssl == nullptr || !SSL_set_fd(ssl, fd)) {
    return absl::InternalError("SSL_new failed");
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool ip = IsIpLiteral(options_.server_name);
  if (ip ? !X509_VERIFY_PARAM_set1_ip_asc(param, options_.server_name.c_str())
         : !X509_VERIFY_PARAM_set1_host(param, options_.server_name.data(),
                                        options_.server_name.size())) {
    return absl::InternalError("cannot set the expected server name");
  }
  if (!ip) SSL_set_tlsext_host_name(ssl, options_.server_name.c_str());
  if (SSL_connect(ssl) != 1) {
    if (absl::Now() >= deadline) {
      ERR_clear_error();
      return absl::DeadlineExceededError("TLS handshake timed out");
    }
    long verify = SSL_get_verify_result(ssl);
    std::string why =
        verify != X509_V_OK ? X509_verify_cert_error_string(verify) : SslErrorText();
    ERR_clear_error();
    return absl::UnavailableError(
        absl::StrCat("TLS handshake with ", options_.address, ": ", why));
  }

  std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", options_.address,
                   "\r\nAccept: application/json\r\nConnection: close\r\n");
  if (method != "GET") {
    absl::StrAppend(&request, "Content-Type: ", content_type,
                    "\r\nContent-Length: ", body.size(), "\r\n");
  }
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) !=
      static_cast<int>(request.size())) {
    return absl::UnavailableError(absl::StrCat("sending request: ", SslErrorText()));
  }
  return conn;
}

namespace {

enum class ReadResult { kData, kEof, kTimeout };

// One SSL_read into `buf`: kData with *n bytes, kEof, or kTimeout when SO_RCVTIMEO
// fired (the caller decides whether time is left).
absl::StatusOr<ReadResult> ReadSome(SSL* ssl, char* buf, int size, int* n) {
  errno = 0;
  *n = SSL_read(ssl, buf, size);
  if (*n > 0) return ReadResult::kData;
  int err = SSL_get_error(ssl, *n);
  if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
    return ReadResult::kEof;  // close_notify, or a plain TCP close (common, tolerated)
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
      (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))) {
    ERR_clear_error();
    return ReadResult::kTimeout;
  }
  return absl::UnavailableError(absl::StrCat("reading response: ", SslErrorText()));
}

}  // namespace

absl::StatusOr<HttpsResponse> HttpsClient::Send(
    const std::string& method, const std::string& path, const std::string& content_type,
    const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) const {
  const absl::Time deadline = absl::Now() + options_.timeout;
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Open(method, path, content_type, body, headers, deadline);
  if (!conn.ok()) return conn.status();
  std::string raw;
  char buf[16384];
  while (true) {
    if (absl::Status s = SetIoTimeout((*conn)->fd.get(), deadline - absl::Now());
        !s.ok()) {
      return s;
    }
    int n = 0;
    absl::StatusOr<ReadResult> read = ReadSome((*conn)->ssl.get(), buf, sizeof(buf), &n);
    if (!read.ok()) return read.status();
    if (*read == ReadResult::kTimeout) continue;  // SetIoTimeout says if time is left
    if (*read == ReadResult::kData) {
      raw.append(buf, n);
      if (raw.size() > options_.max_response_bytes) {
        return absl::UnavailableError("response too large");
      }
    }
    absl::StatusOr<std::optional<HttpsResponse>> parsed =
        ParseResponse(raw, *read == ReadResult::kEof);
    if (!parsed.ok()) return parsed.status();
    if (parsed->has_value()) return **std::move(parsed);
  }
}

absl::Status HttpsClient::Stream(
    const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& headers,
    const StreamHandlers& handlers) const {
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Open("GET", path, "", "", headers, absl::Now() + options_.timeout);
  if (!conn.ok()) return conn.status();
  const int fd = (*conn)->fd.get();
  SSL* ssl = (*conn)->ssl.get();
  // Short read timeouts, so a cancel is seen within one tick.
  constexpr absl::Duration kTick = absl::Milliseconds(100);
  timeval tv = absl::ToTimeval(kTick);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  std::string raw;  // the head until it is complete
  std::optional<ResponseHead> head;
  ChunkedDecoder decoder(options_.max_response_bytes);
  size_t body_seen = 0;
  std::string piece;
  absl::Time last_byte = absl::Now();
  char buf[16384];
  auto cancelled = [&] {
    return handlers.cancelled != nullptr && handlers.cancelled->load();
  };
  // Hands body bytes on; false when the handler wants no more.
  auto deliver = [&](absl::string_view bytes) -> absl::StatusOr<bool> {
    if (bytes.empty()) return true;
    if (head->chunked) {
      piece.clear();
      if (absl::Status s = decoder.Feed(bytes, &piece); !s.ok()) return s;
      return piece.empty() || handlers.on_body(piece);
    }
    if (head->content_length) {
      bytes = bytes.substr(0, *head->content_length - body_seen);
    }
    body_seen += bytes.size();
    return handlers.on_body(bytes);
  };
  auto body_complete = [&] {
    return head->chunked ? decoder.done()
                         : head->content_length && body_seen >= *head->content_length;
  };
  while (true) {
    if (cancelled()) return absl::OkStatus();
    int n = 0;
    absl::StatusOr<ReadResult> read = ReadSome(ssl, buf, sizeof(buf), &n);
    if (!read.ok()) return read.status();
    if (*read == ReadResult::kTimeout) {
      if (absl::Now() - last_byte > handlers.idle_timeout) {
        return absl::DeadlineExceededError(
            absl::StrCat("no byte from ", options_.address, " for ",
                         absl::FormatDuration(handlers.idle_timeout)));
      }
      continue;
    }
    const bool eof = *read == ReadResult::kEof;
    absl::string_view bytes(buf, eof ? 0 : n);
    last_byte = absl::Now();
    if (!head) {
      raw.append(bytes.data(), bytes.size());
      absl::StatusOr<std::optional<ResponseHead>> parsed = ParseHead(raw, eof);
      if (!parsed.ok()) return parsed.status();
      if (!parsed->has_value()) continue;
      head = **parsed;
      if (!handlers.on_head(head->status)) return absl::OkStatus();
      bytes = absl::string_view(raw).substr(head->size);
    }
    absl::StatusOr<bool> more = deliver(bytes);
    if (!more.ok()) return more.status();
    if (!*more || body_complete()) return absl::OkStatus();
    if (eof) {
      if (head->chunked) {
        return absl::UnavailableError("connection closed inside a chunked body");
      }
      if (head->content_length) {
        return absl::UnavailableError("connection closed inside the body");
      }
      return absl::OkStatus();
    }
    raw.clear();
  }
}

}  // namespace tandem::controlplane
