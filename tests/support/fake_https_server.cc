// BoringSSL code: never include gRPC headers here.
#include "tests/support/fake_https_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/pki/certificate_authority.h"

namespace tandem::controlplane {

struct FakeHttpsServer::Tls {
  bssl::UniquePtr<SSL_CTX> ctx;
};

absl::StatusOr<std::unique_ptr<FakeHttpsServer>> FakeHttpsServer::Create(
    Handler handler) {
  // Peers that time out close early; neither side of a test may die of SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  absl::StatusOr<pki::CertificateAuthority> ca =
      pki::CertificateAuthority::CreateRoot({}, absl::Now());
  if (!ca.ok()) return ca.status();
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload("cluster.local", "default", "kube-apiserver");
  if (!id.ok()) return id.status();
  absl::StatusOr<pki::Certificate> cert =
      ca->IssueServer(*key, *id, {"kubernetes.default.svc", "localhost"}, {"127.0.0.1"},
                      absl::Hours(1), absl::Now());
  if (!cert.ok()) return cert.status();

  auto tls = std::make_unique<Tls>();
  tls->ctx.reset(SSL_CTX_new(TLS_method()));
  if (!tls->ctx || !SSL_CTX_use_certificate(tls->ctx.get(), cert->get()) ||
      !SSL_CTX_use_PrivateKey(tls->ctx.get(), key->get())) {
    return absl::InternalError("fake API server: SSL_CTX setup failed");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return absl::InternalError("fake API server: cannot listen");
  }
  int stop[2];
  if (pipe2(stop, O_CLOEXEC) != 0) {
    close(fd);
    return absl::InternalError("fake API server: pipe failed");
  }
  auto server = std::unique_ptr<FakeHttpsServer>(
      new FakeHttpsServer(std::move(handler), std::move(tls), fd, ntohs(addr.sin_port),
                          ca->root().ToPem(), stop[0], stop[1]));
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

FakeHttpsServer::FakeHttpsServer(Handler handler, std::unique_ptr<Tls> tls, int listen_fd,
                                 int port, std::string ca_pem, int stop_read,
                                 int stop_write)
    : handler_(std::move(handler)),
      tls_(std::move(tls)),
      listen_fd_(listen_fd),
      port_(port),
      ca_pem_(std::move(ca_pem)),
      stop_read_(stop_read),
      stop_write_(stop_write) {}

FakeHttpsServer::~FakeHttpsServer() {
  char c = 0;
  (void)!write(stop_write_, &c, 1);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_read_);
  close(stop_write_);
}

void FakeHttpsServer::Run() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_read_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};  // a stuck client cannot hang the test for long
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Serve(fd);
    close(fd);
  }
}

void FakeHttpsServer::Serve(int fd) {
  bssl::UniquePtr<SSL> ssl(SSL_new(tls_->ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    return;
  }
  std::string raw;
  char buf[4096];
  size_t head_end = std::string::npos;
  size_t content_length = 0;
  FakeHttpsRequest request;
  while (raw.size() < (1 << 20)) {
    int n = SSL_read(ssl.get(), buf, sizeof(buf));
    if (n <= 0) break;
    raw.append(buf, n);
    if (head_end == std::string::npos) {
      head_end = raw.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      std::vector<std::string> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
      std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
      if (first.size() == 3) {
        request.method = first[0];
        request.path = first[1];
      }
      for (size_t i = 1; i < lines.size(); ++i) {
        size_t colon = lines[i].find(':');
        if (colon == std::string::npos) continue;
        std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
        std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
        if (name == "content-length") (void)absl::SimpleAtoi(value, &content_length);
        if (name == "authorization") request.authorization = value;
        if (name == "content-type") request.content_type = value;
      }
    }
    if (raw.size() >= head_end + 4 + content_length) break;
  }
  if (head_end == std::string::npos) {
    ERR_clear_error();
    return;
  }
  request.body = raw.substr(head_end + 4, content_length);
  ++requests_;
  FakeHttpsReply reply = handler_(request);
  std::string out = absl::StrCat("HTTP/1.1 ", reply.status, " Whatever\r\n",
                                 "Content-Type: application/json\r\n");
  if (reply.chunked) {
    absl::StrAppend(&out, "Transfer-Encoding: chunked\r\n\r\n");
    size_t half = reply.body.size() / 2;
    if (half > 0) {
      absl::StrAppend(&out, absl::Hex(half), "\r\n", reply.body.substr(0, half), "\r\n");
    }
    absl::StrAppend(&out, absl::Hex(reply.body.size() - half), ";ext=1\r\n",
                    reply.body.substr(half), "\r\n0\r\n\r\n");
  } else {
    absl::StrAppend(&out, "Content-Length: ", reply.body.size(), "\r\n\r\n", reply.body);
  }
  SSL_write(ssl.get(), out.data(), static_cast<int>(out.size()));
  SSL_shutdown(ssl.get());
  ERR_clear_error();
}

}  // namespace tandem::controlplane
