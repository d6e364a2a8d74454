#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"
#include "gtest/gtest.h"
#include "tests/support/pki_test_util.h"

namespace tandem::http {
namespace {

// A blocking loopback client with bounded waits.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until the server closes or `limit` passes; returns what arrived.
  std::string ReadUntilClose(absl::Duration limit = absl::Seconds(5)) {
    std::string out;
    absl::Time deadline = absl::Now() + limit;
    while (true) {
      int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p{fd_, POLLIN, 0};
      if (ms <= 0 || poll(&p, 1, ms) <= 0) {
        timed_out_ = true;
        return out;
      }
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  bool timed_out() const { return timed_out_; }

 private:
  int fd_;
  bool connected_ = false;
  bool timed_out_ = false;
};

std::string Fetch(uint16_t port, const std::string& request) {
  Client client(port);
  EXPECT_TRUE(client.connected());
  EXPECT_TRUE(client.Send(request));
  return client.ReadUntilClose();
}

std::string StatusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string Body(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServer::Options options = {}) {
    options.registry = &registry_;
    options.name = "test";
    auto server = HttpServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->Handle("/hello", [](const HttpRequest& req) {
      return HttpResponse{200, "text/plain; charset=utf-8",
                          "hello " + req.method + " query=" + req.query + "\n"};
    });
    server_->Handle("/echo", [](const HttpRequest& req) {
      return HttpResponse{201, "application/octet-stream", req.body};
    });
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }

  uint64_t Refused(const std::string& reason) {
    return registry_
        .GetCounter("tandem_http_refused_total",
                    "HTTP requests refused before reaching a handler, by reason.",
                    {{"server", "test"}, {"reason", reason}})
        .Value();
  }

  metrics::Registry registry_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesRegisteredPathWithQuery) {
  StartServer();
  std::string response =
      Fetch(server_->port(), "GET /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 200 OK");
  EXPECT_NE(response.find("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(response.find("\r\nContent-Length: 24\r\n"), std::string::npos);
  EXPECT_NE(response.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(Body(response), "hello GET query=a=1&b=2\n");
  EXPECT_NE(registry_.RenderPrometheus().find(
                "tandem_http_requests_total{code=\"200\",server=\"test\"} 1\n"),
            std::string::npos);
}

TEST_F(HttpServerTest, AcceptsBareLfLineEnds) {
  StartServer();
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.0\n\n")),
            "HTTP/1.1 200 OK");
}

TEST_F(HttpServerTest, PassesPostBodyToHandler) {
  StartServer();
  std::string response = Fetch(
      server_->port(), "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world");
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 201 Created");
  EXPECT_EQ(Body(response), "hello world");
}

TEST_F(HttpServerTest, AcceptsBodyOfExactlyTheLimit) {
  StartServer();
  std::string body(64 * 1024, 'x');
  std::string response =
      Fetch(server_->port(), "POST /echo HTTP/1.1\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 201 Created");
  EXPECT_EQ(Body(response).size(), body.size());
}

TEST_F(HttpServerTest, Returns404ForUnknownPath) {
  StartServer();
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /nope HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 404 Not Found");
  // Paths match exactly: no prefix matching.
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello/x HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 404 Not Found");
}

TEST_F(HttpServerTest, Returns400ForMalformedRequests) {
  StartServer();
  for (const char* request : {
           "GARBAGE\r\n\r\n",
           "GET /hello\r\n\r\n",
           "GET /hello HTTP/1.1 extra\r\n\r\n",
           "GET hello HTTP/1.1\r\n\r\n",
           "GET /hello HTTP/2.0\r\n\r\n",
           "GET /hello HTTP/1.1\r\nNoColonHeader\r\n\r\n",
           "GET /hello HTTP/1.1\r\nBad Name: x\r\n\r\n",
           "GET /hello HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           "\r\n\r\n",
       }) {
    EXPECT_EQ(StatusLine(Fetch(server_->port(), request)), "HTTP/1.1 400 Bad Request")
        << request;
  }
  EXPECT_EQ(Refused("malformed"), 12u);
}

TEST_F(HttpServerTest, Returns405ForUnsupportedMethod) {
  StartServer();
  std::string response = Fetch(server_->port(), "DELETE /hello HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(response.find("\r\nAllow: GET, POST\r\n"), std::string::npos);
}

TEST_F(HttpServerTest, Returns501ForChunkedBodies) {
  StartServer();
  EXPECT_EQ(StatusLine(Fetch(server_->port(),
                             "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n")),
            "HTTP/1.1 501 Not Implemented");
}

TEST_F(HttpServerTest, Returns413ForOversizedBodyWithoutReadingIt) {
  StartServer();
  Client client(server_->port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nContent-Length: 65537\r\n\r\npartial"));
  EXPECT_EQ(StatusLine(client.ReadUntilClose()), "HTTP/1.1 413 Content Too Large");
  EXPECT_EQ(Refused("body_too_large"), 1u);
}

TEST_F(HttpServerTest, Returns431ForOversizedHeaders) {
  StartServer();
  Client client(server_->port());
  // No end of headers ever arrives: the cap, not the timeout, ends it.
  ASSERT_TRUE(client.Send("GET /hello HTTP/1.1\r\nX-Big: " + std::string(9000, 'a')));
  absl::Time start = absl::Now();
  EXPECT_EQ(StatusLine(client.ReadUntilClose()),
            "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(Refused("header_too_large"), 1u);
}

TEST_F(HttpServerTest, SlowClientTimesOutWithoutBlockingOthers) {
  HttpServer::Options options;
  options.read_timeout = absl::Milliseconds(300);
  StartServer(options);
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /hello HT"));  // and then nothing

  absl::Time start = absl::Now();
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 200 OK");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(250));  // not queued behind `slow`

  std::string got = slow.ReadUntilClose(absl::Seconds(5));
  absl::Duration held = absl::Now() - start;
  EXPECT_FALSE(slow.timed_out());
  EXPECT_EQ(got, "");  // closed, no response
  EXPECT_LT(held, absl::Seconds(2));
  EXPECT_EQ(Refused("timeout"), 1u);
}

// With every slot taken by clients that never finish a request, a new client is still
// served at once: the oldest incomplete connection is closed for it, and counted.
TEST_F(HttpServerTest, ShedsTheOldestIncompleteConnectionForANewOne) {
  HttpServer::Options options;
  options.max_connections = 2;
  options.read_timeout = absl::Seconds(30);  // only shedding frees a slot here
  StartServer(options);
  // Accepted in connect order (the kernel's accept queue is FIFO).
  Client idle(server_->port());
  Client partial(server_->port());
  ASSERT_TRUE(idle.connected() && partial.connected());
  ASSERT_TRUE(partial.Send("GET /hel"));
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 200 OK");
  EXPECT_EQ(idle.ReadUntilClose(), "");  // closed without a response
  EXPECT_FALSE(idle.timed_out());
  EXPECT_EQ(Refused("shed"), 1u);
  // `partial`, the younger, kept its slot and its bytes.
  ASSERT_TRUE(partial.Send("lo HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(StatusLine(partial.ReadUntilClose()), "HTTP/1.1 200 OK");
  EXPECT_EQ(Refused("shed"), 1u);
  EXPECT_EQ(Refused("timeout"), 0u);
}

TEST_F(HttpServerTest, StopClosesOpenConnectionsAndJoins) {
  HttpServer::Options options;
  options.read_timeout = absl::Seconds(30);
  StartServer(options);
  Client idle(server_->port());
  ASSERT_TRUE(idle.Send("GET /hel"));
  // Wait for the server to have accepted: a full request on another connection.
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 200 OK");
  absl::Time start = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(idle.ReadUntilClose(absl::Seconds(2)), "");
  EXPECT_FALSE(idle.timed_out());
  server_->Stop();  // idempotent
}

// Holds the Responders a deferred handler received, for the test to answer.
class PendingResponders {
 public:
  HttpServer::DeferredHandler Handler() {
    return [this](const HttpRequest&, HttpServer::Responder responder) {
      absl::MutexLock lock(&mu_);
      responders_.push_back(std::move(responder));
      arrived_.SignalAll();
    };
  }
  // Waits until `n` requests have reached the handler; returns the n-th Responder.
  // A CondVar, not an absl::Condition: Abseil may evaluate a Condition in the
  // unlocking thread, and TSan (Debian's Abseil is uninstrumented) then reported the
  // handler's push_back racing with that evaluation.
  HttpServer::Responder Await(size_t n) {
    absl::MutexLock lock(&mu_);
    while (responders_.size() < n) arrived_.Wait(&mu_);
    return responders_[n - 1];
  }

 private:
  absl::Mutex mu_;
  absl::CondVar arrived_;
  std::vector<HttpServer::Responder> responders_ ABSL_GUARDED_BY(mu_);
};

TEST_F(HttpServerTest, DeferredHandlerAnswersFromAnotherThreadWhileOthersAreServed) {
  StartServer();
  PendingResponders pending;
  server_->HandleDeferred("/later", pending.Handler());
  Client waiting(server_->port());
  ASSERT_TRUE(waiting.Send("GET /later HTTP/1.1\r\n\r\n"));
  HttpServer::Responder responder = pending.Await(1);

  // The serving thread is free while /later waits for its answer.
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 200 OK");

  std::thread([responder] {
    responder(HttpResponse{200, "text/plain", "late\n"});
    responder(HttpResponse{500, "text/plain", "second\n"});  // dropped
  }).join();
  std::string response = waiting.ReadUntilClose();
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 200 OK");
  EXPECT_EQ(Body(response), "late\n");
}

// A connection whose request is being answered is never shed: with every slot held by
// one, new clients wait in the backlog and are served once a slot frees.
TEST_F(HttpServerTest, NeverShedsAConnectionWhoseRequestIsBeingAnswered) {
  HttpServer::Options options;
  options.max_connections = 1;
  options.read_timeout = absl::Seconds(30);
  StartServer(options);
  PendingResponders pending;
  server_->HandleDeferred("/slow", pending.Handler());
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /slow HTTP/1.1\r\n\r\n"));
  HttpServer::Responder respond = pending.Await(1);
  Client next(server_->port());
  ASSERT_TRUE(next.connected());
  ASSERT_TRUE(next.Send("GET /hello HTTP/1.1\r\n\r\n"));
  respond(HttpResponse{200, "text/plain", "late\n"});
  EXPECT_EQ(Body(slow.ReadUntilClose()), "late\n");
  EXPECT_EQ(StatusLine(next.ReadUntilClose()), "HTTP/1.1 200 OK");
  EXPECT_EQ(Refused("shed"), 0u);
}

TEST_F(HttpServerTest, DeferredHandlerMayAnswerAtOnce) {
  StartServer();
  server_->HandleDeferred("/now", [](const HttpRequest& request,
                                     HttpServer::Responder responder) {
    responder(HttpResponse{503, "text/plain", "now " + request.query + "\n"});
  });
  std::string response = Fetch(server_->port(), "GET /now?x HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(Body(response), "now x\n");
}

TEST_F(HttpServerTest, DeferredHandlerThatNeverAnswersGets504) {
  HttpServer::Options options;
  options.deferred_timeout = absl::Milliseconds(200);
  StartServer(options);
  PendingResponders pending;
  server_->HandleDeferred("/never", pending.Handler());
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /never HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 504 Gateway Timeout");
  pending.Await(1)(HttpResponse{200, "text/plain", "too late\n"});  // dropped
  EXPECT_EQ(StatusLine(Fetch(server_->port(), "GET /hello HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 200 OK");
}

TEST_F(HttpServerTest, ResponderOutlivesTheServer) {
  StartServer();
  PendingResponders pending;
  server_->HandleDeferred("/later", pending.Handler());
  Client waiting(server_->port());
  ASSERT_TRUE(waiting.Send("GET /later HTTP/1.1\r\n\r\n"));
  HttpServer::Responder responder = pending.Await(1);
  server_.reset();
  EXPECT_EQ(waiting.ReadUntilClose(), "");  // closed unanswered
  responder(HttpResponse{200, "text/plain", "nobody listens\n"});  // dropped, no crash
}

TEST_F(HttpServerTest, StartTwiceFails) {
  StartServer();
  EXPECT_EQ(server_->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HttpServerCreateTest, RefusesUnparsableAddress) {
  HttpServer::Options options;
  options.address = "localhost";  // literals only: no name resolution
  EXPECT_EQ(HttpServer::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpServerCreateTest, ReportsPortInUse) {
  auto first = HttpServer::Create({});
  ASSERT_TRUE(first.ok());
  HttpServer::Options options;
  options.port = (*first)->port();
  auto second = HttpServer::Create(options);
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("127.0.0.1"), absl::string_view::npos);
}

TEST(HttpServerCreateTest, DefaultsToLoopback) {
  auto server = HttpServer::Create({});
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(HttpServer::Options().address, "127.0.0.1");
}

TEST(HttpServerCreateTest, ServesOnIpv6LoopbackWhenAvailable) {
  HttpServer::Options options;
  options.address = "::1";
  auto server = HttpServer::Create(options);
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  (*server)->Handle("/x", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "v6"};
  });
  ASSERT_TRUE((*server)->Start().ok());
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons((*server)->port());
  addr.sin6_addr = in6addr_loopback;
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string req = "GET /x HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[512];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, 5000) > 0) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_EQ(Body(out), "v6");
}

// --- HTTPS ---

constexpr char kServerName[] = "tandem-injector.tandem-system.svc";

// A serving certificate for kServerName and 127.0.0.1 from `ca`.
TlsCredentials MakeServing(const pki::CertificateAuthority& ca,
                           absl::Time now = absl::Now(),
                           absl::Duration ttl = absl::Hours(1)) {
  pki::PrivateKey key = *pki::PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::ForWorkload("cluster.local", "tandem-system", "tandem-ca");
  absl::StatusOr<pki::Certificate> cert =
      ca.IssueServer(key, id, {kServerName}, {"127.0.0.1"}, ttl, now);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return TlsCredentials{cert->ToPem(), *key.ToPem()};
}

std::string SerialOf(const TlsCredentials& credentials) {
  absl::StatusOr<std::vector<pki::Certificate>> chain =
      pki::Certificate::ChainFromPem(credentials.cert_chain_pem);
  return chain.ok() ? chain->front().SerialHex() : "";
}

// A blocking BoringSSL client that verifies the server against `ca_pem` and
// kServerName, offering ALPN h2 and http/1.1 like Go's HTTP client. Reads and writes
// are bounded by a 5 s socket timeout.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca_pem) : tcp_(port) {
    ctx_.reset(SSL_CTX_new(TLS_method()));
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_.get());
    absl::StatusOr<std::vector<pki::Certificate>> roots =
        pki::Certificate::ChainFromPem(ca_pem);
    EXPECT_TRUE(roots.ok()) << roots.status();
    for (const pki::Certificate& c : *roots) X509_STORE_add_cert(store, c.get());
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    static const uint8_t kAlpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx_.get(), kAlpn, sizeof(kAlpn) - 1);
    ssl_.reset(SSL_new(ctx_.get()));
    SSL_set_fd(ssl_.get(), tcp_.fd());
    SSL_set_tlsext_host_name(ssl_.get(), kServerName);
    X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl_.get()), kServerName,
                                sizeof(kServerName) - 1);
    timeval tv{5, 0};
    setsockopt(tcp_.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(tcp_.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  // Returns "" on success, else why the handshake failed.
  std::string Handshake() {
    if (SSL_connect(ssl_.get()) == 1) return "";
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    return buf;
  }
  std::string PeerSerial() {
    bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl_.get()));
    return peer ? pki::Certificate::FromX509(peer.get()).SerialHex() : "";
  }
  std::string Alpn() {
    const uint8_t* data;
    unsigned len;
    SSL_get0_alpn_selected(ssl_.get(), &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
  }
  uint16_t Version() { return SSL_version(ssl_.get()); }
  bool Send(const std::string& data) {
    return SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  // Reads until close_notify, EOF, an error or the socket timeout.
  std::string ReadUntilClose() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = SSL_read(ssl_.get(), buf, sizeof(buf))) > 0) out.append(buf, n);
    ERR_clear_error();
    return out;
  }

 private:
  Client tcp_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  bssl::UniquePtr<SSL> ssl_;
};

class HttpsServerTest : public HttpServerTest {
 protected:
  void StartHttps(HttpServer::Options options = {}) {
    serving_ = MakeServing(ca_);
    options.tls = serving_;
    StartServer(options);
  }
  std::string Fetch(const std::string& request, std::string* serial = nullptr) {
    TlsClient client(server_->port(), ca_.root().ToPem());
    std::string error = client.Handshake();
    EXPECT_EQ(error, "");
    if (serial != nullptr) *serial = client.PeerSerial();
    EXPECT_TRUE(client.Send(request));
    return client.ReadUntilClose();
  }
  uint64_t CredentialUpdates(const std::string& result) {
    return registry_
        .GetCounter("tandem_http_tls_credentials_total",
                    "HTTPS certificate updates, by result (accepted or why refused).",
                    {{"server", "test"}, {"result", result}})
        .Value();
  }

  pki::CertificateAuthority ca_ = pki::testing::MakeRoot("https test root");
  TlsCredentials serving_;
};

TEST_F(HttpsServerTest, ServesHttpsWithTls13AndAlpnHttp11) {
  StartHttps();
  TlsClient client(server_->port(), ca_.root().ToPem());
  ASSERT_EQ(client.Handshake(), "");
  EXPECT_EQ(client.Version(), TLS1_3_VERSION);
  EXPECT_EQ(client.Alpn(), "http/1.1");  // chosen over h2
  EXPECT_EQ(client.PeerSerial(), SerialOf(serving_));
  ASSERT_TRUE(client.Send("GET /hello?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string response = client.ReadUntilClose();
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 200 OK");
  EXPECT_EQ(Body(response), "hello GET query=x=1\n");
  EXPECT_EQ(CredentialUpdates("accepted"), 1u);
}

TEST_F(HttpsServerTest, CarriesLargeBodiesBothWays) {
  StartHttps();
  // A request body of several TLS records, and a response far larger than the socket
  // buffers, so the server's writes wait for POLLOUT (SSL_ERROR_WANT_WRITE).
  std::string body(64 * 1024, 'x');
  for (size_t i = 0; i < body.size(); i += 7) body[i] = static_cast<char>('a' + i % 26);
  std::string response = Fetch("POST /echo HTTP/1.1\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(StatusLine(response), "HTTP/1.1 201 Created");
  EXPECT_TRUE(Body(response) == body);

  std::string big(8 << 20, 'b');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('A' + i % 26);
  server_->Handle("/big", [&big](const HttpRequest&) {
    return HttpResponse{200, "application/octet-stream", big};
  });
  EXPECT_TRUE(Body(Fetch("GET /big HTTP/1.1\r\n\r\n")) == big);
}

TEST_F(HttpsServerTest, CurlVerifiesTheServerByName) {
  StartHttps();
  std::filesystem::path dir = ::testing::TempDir();
  std::string ca_file = (dir / "https_test_ca.pem").string();
  std::ofstream(ca_file) << ca_.root().ToPem();
  std::string command = absl::StrCat(
      "curl -sS --max-time 10 --cacert ", ca_file, " --resolve ", kServerName, ":",
      server_->port(), ":127.0.0.1 https://", kServerName, ":", server_->port(),
      "/hello?curl=1 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << out;
  EXPECT_EQ(out, "hello GET query=curl=1\n");
}

TEST_F(HttpsServerTest, DropsPlaintextClientOnHttpsPort) {
  StartHttps();
  Client plain(server_->port());
  ASSERT_TRUE(plain.Send("GET /hello HTTP/1.1\r\n\r\n"));
  std::string got = plain.ReadUntilClose();
  EXPECT_FALSE(plain.timed_out());
  EXPECT_FALSE(absl::StrContains(got, "hello")) << got;
  EXPECT_FALSE(absl::StrContains(got, "HTTP/1.1")) << got;
  EXPECT_EQ(Refused("tls_handshake"), 1u);
  // The server is still serving.
  EXPECT_EQ(StatusLine(Fetch("GET /hello HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
}

TEST_F(HttpsServerTest, SlowHandshakeIsCutByReadTimeout) {
  HttpServer::Options options;
  options.read_timeout = absl::Milliseconds(300);
  StartHttps(options);
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send(std::string("\x16\x03\x01\x02\x00\x01", 6)));  // and then nothing
  absl::Time start = absl::Now();
  // Others are served meanwhile.
  EXPECT_EQ(StatusLine(Fetch("GET /hello HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
  EXPECT_EQ(slow.ReadUntilClose(absl::Seconds(5)), "");
  EXPECT_FALSE(slow.timed_out());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(Refused("timeout"), 1u);
}

TEST_F(HttpsServerTest, SwappedCertificateServesNextConnectionAndOpenOneKeepsOld) {
  StartHttps();
  const std::string old_serial = SerialOf(serving_);
  TlsClient open(server_->port(), ca_.root().ToPem());
  ASSERT_EQ(open.Handshake(), "");
  EXPECT_EQ(open.PeerSerial(), old_serial);

  TlsCredentials next = MakeServing(ca_);
  ASSERT_TRUE(server_->SetTlsCredentials(next).ok());
  std::string serial;
  EXPECT_EQ(StatusLine(Fetch("GET /hello HTTP/1.1\r\n\r\n", &serial)), "HTTP/1.1 200 OK");
  EXPECT_EQ(serial, SerialOf(next));
  EXPECT_NE(serial, old_serial);

  // The connection made before the swap still completes its request.
  ASSERT_TRUE(open.Send("GET /hello HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(StatusLine(open.ReadUntilClose()), "HTTP/1.1 200 OK");
  EXPECT_EQ(CredentialUpdates("accepted"), 2u);
}

TEST_F(HttpsServerTest, RefusesBadCredentialsAndKeepsServingTheOld) {
  StartHttps();
  TlsCredentials other = MakeServing(ca_);
  TlsCredentials expired =
      MakeServing(ca_, absl::Now() - absl::Hours(3), absl::Hours(1));
  struct Case {
    TlsCredentials credentials;
    std::string error;
    std::string result;
  } cases[] = {
      {{serving_.cert_chain_pem, other.key_pem},
       "TLS credentials: the private key does not match the certificate",
       "key_mismatch"},
      {{"not a certificate", serving_.key_pem},
       "TLS credentials: certificate chain: ", "bad_certificate"},
      {{serving_.cert_chain_pem, "not a key"}, "TLS credentials: private key: ", "bad_key"},
      {expired, "TLS credentials: the certificate expired at ", "expired"},
  };
  for (const Case& c : cases) {
    absl::Status status = server_->SetTlsCredentials(c.credentials);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.result;
    EXPECT_TRUE(absl::StartsWith(status.message(), c.error)) << status;
    EXPECT_EQ(CredentialUpdates(c.result), 1u) << c.result;
  }
  std::string serial;
  EXPECT_EQ(StatusLine(Fetch("GET /hello HTTP/1.1\r\n\r\n", &serial)), "HTTP/1.1 200 OK");
  EXPECT_EQ(serial, SerialOf(serving_));
}

TEST(HttpServerCreateTest, RefusesBadTlsCredentials) {
  pki::CertificateAuthority ca = pki::testing::MakeRoot();
  TlsCredentials a = MakeServing(ca), b = MakeServing(ca);
  HttpServer::Options options;
  options.tls = TlsCredentials{a.cert_chain_pem, b.key_pem};
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(server.status().message(), "does not match"))
      << server.status();
}

TEST(HttpServerCreateTest, PlaintextServerRefusesTlsCredentials) {
  auto server = HttpServer::Create({});
  ASSERT_TRUE(server.ok());
  pki::CertificateAuthority ca = pki::testing::MakeRoot();
  EXPECT_EQ((*server)->SetTlsCredentials(MakeServing(ca)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SetListenAddressTest, SplitsHostAndPort) {
  HttpServer::Options options;
  ASSERT_TRUE(SetListenAddress("0.0.0.0:15090", &options).ok());
  EXPECT_EQ(options.address, "0.0.0.0");
  EXPECT_EQ(options.port, 15090);
  ASSERT_TRUE(SetListenAddress("[::1]:0", &options).ok());
  EXPECT_EQ(options.address, "[::1]");
  EXPECT_EQ(options.port, 0);
  ASSERT_TRUE(SetListenAddress("localhost:1", &options).ok());
  EXPECT_EQ(options.address, "127.0.0.1");
}

TEST(SetListenAddressTest, RefusesWhatIsNotHostPort) {
  HttpServer::Options options;
  for (const char* bad :
       {"", "15090", ":15090", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:http"}) {
    EXPECT_EQ(SetListenAddress(bad, &options).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(IsLoopbackAddressTest, OnlyLoopback) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("localhost"));
}

}  // namespace
}  // namespace tandem::http
