// tcpSocket and httpGet probes against apps scripted on loopback: each passes and
// fails where the kubelet's would, and none outlives its deadline.
#include "agent/app_socket_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/test_ca.h"

namespace tandem::agent {
namespace {

// tandem-agent ignores SIGPIPE (PrepareProcess), so a probe that writes to an app that
// has already closed gets EPIPE; this test process does the same (under ASan's timing,
// HTTPS to a plaintext app died of SIGPIPE otherwise).
[[maybe_unused]] const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// A socket on 127.0.0.1 (or ::1) port 0; listening or only bound, so that nothing
// else can take its port while a test expects it refused.
class LoopbackSocket {
 public:
  LoopbackSocket(bool listening, bool v6 = false) {
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    }
    fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
          (!listening || listen(fd_, 16) == 0) &&
          getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ~LoopbackSocket() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  uint16_t port_ = 0;
};

// An app on loopback that answers each connection with a script: it reads the request
// head (unless told to answer at once), records it, writes `answer` and closes; or,
// when silent, says nothing and holds the connection until the app is destroyed. With
// `tls`, over TLS.
class ScriptedApp {
 public:
  struct Options {
    std::string answer;
    bool silent = false;
    bool answer_at_once = false;
    SSL_CTX* tls = nullptr;
  };
  static Options Silent() {
    Options options;
    options.silent = true;
    return options;
  }
  static Options Tls(std::string answer, SSL_CTX* tls) {
    Options options;
    options.answer = std::move(answer);
    options.tls = tls;
    return options;
  }
  explicit ScriptedApp(Options options)
      : options_(std::move(options)), listener_(/*listening=*/true) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedApp() {
    shutdown(listener_.fd(), SHUT_RDWR);  // wakes accept()
    thread_.join();
    for (int fd : held_) close(fd);
  }
  uint16_t port() const { return listener_.port(); }
  std::string request() {
    absl::MutexLock lock(&mu_);
    return request_;
  }

 private:
  void Serve() {
    while (true) {
      int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      if (options_.silent) {
        held_.push_back(fd);
        continue;
      }
      timeval five_seconds{5, 0};  // a probe that never finishes its request
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof(five_seconds));
      SSL* ssl = nullptr;
      if (options_.tls != nullptr) {
        ssl = SSL_new(options_.tls);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
          SSL_free(ssl);
          close(fd);
          continue;
        }
      }
      std::string head;
      char buf[1024];
      while (!options_.answer_at_once && head.find("\r\n\r\n") == std::string::npos) {
        int n = ssl != nullptr ? SSL_read(ssl, buf, sizeof(buf))
                               : static_cast<int>(recv(fd, buf, sizeof(buf), 0));
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      {
        absl::MutexLock lock(&mu_);
        request_ = head;
      }
      if (ssl != nullptr) {
        SSL_write(ssl, options_.answer.data(), static_cast<int>(options_.answer.size()));
        SSL_shutdown(ssl);
        SSL_free(ssl);
      } else {
        send(fd, options_.answer.data(), options_.answer.size(), MSG_NOSIGNAL);
      }
      close(fd);
    }
  }

  const Options options_;
  LoopbackSocket listener_;
  std::vector<int> held_;  // serving thread, then the destructor after the join
  std::thread thread_;
  absl::Mutex mu_;
  std::string request_ ABSL_GUARDED_BY(mu_);
};

// A server context with TestCa's serving certificate, which the probe must not check.
bssl::UniquePtr<SSL_CTX> ServerTlsContext() {
  absl::StatusOr<std::unique_ptr<TestCa>> ca = TestCa::Create("cluster.local");
  EXPECT_TRUE(ca.ok()) << ca.status();
  bssl::UniquePtr<BIO> chain(BIO_new_mem_buf((*ca)->server_chain_pem().data(),
                                             (*ca)->server_chain_pem().size()));
  bssl::UniquePtr<X509> cert(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
  bssl::UniquePtr<BIO> key_pem(
      BIO_new_mem_buf((*ca)->server_key_pem().data(), (*ca)->server_key_pem().size()));
  bssl::UniquePtr<EVP_PKEY> key(
      PEM_read_bio_PrivateKey(key_pem.get(), nullptr, nullptr, nullptr));
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  EXPECT_TRUE(cert && key && SSL_CTX_use_certificate(ctx.get(), cert.get()) &&
              SSL_CTX_use_PrivateKey(ctx.get(), key.get()));
  return ctx;
}

AppProbeSpec Tcp(uint16_t port) {
  AppProbeSpec spec;
  spec.kind = AppProbeSpec::Kind::kTcpSocket;
  spec.host = "127.0.0.1";
  spec.port = port;
  return spec;
}

AppProbeSpec Http(uint16_t port, bool https = false) {
  AppProbeSpec spec = Tcp(port);
  spec.kind = AppProbeSpec::Kind::kHttpGet;
  spec.https = https;
  return spec;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

TEST(TcpProbeTest, SucceedsWhenTheAppListens) {
  LoopbackSocket app(/*listening=*/true);
  ASSERT_TRUE(app.ok());
  AppProbeResult result = RunSocketProbe(Tcp(app.port()), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kSuccess) << result.detail;
}

TEST(TcpProbeTest, FailsAsRefusedWhenNothingListens) {
  LoopbackSocket bound(/*listening=*/false);
  ASSERT_TRUE(bound.ok());
  AppProbeResult result = RunSocketProbe(Tcp(bound.port()), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kRefused);
  EXPECT_EQ(result.detail,
            "connect 127.0.0.1:" + std::to_string(bound.port()) + ": Connection refused");
}

TEST(TcpProbeTest, ReachesIpv6Loopback) {
  LoopbackSocket app(/*listening=*/true, /*v6=*/true);
  if (!app.ok()) GTEST_SKIP() << "no IPv6 loopback here";
  AppProbeSpec spec = Tcp(app.port());
  spec.host = "::1";
  AppProbeResult result = RunSocketProbe(spec, Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kSuccess) << result.detail;
}

TEST(HttpProbeTest, SucceedsFrom200To399AndFailsOtherwise) {
  for (int status : {200, 204, 301, 302, 399, 400, 404, 500, 503}) {
    ScriptedApp app({"HTTP/1.1 " + std::to_string(status) +
                     " Whatever\r\nContent-Length: 0\r\n\r\n"});
    AppProbeResult result = RunSocketProbe(Http(app.port()), Soon());
    EXPECT_EQ(result.ok(), status < 400) << status << ": " << result.detail;
    EXPECT_EQ(result.outcome,
              status < 400 ? AppProbeOutcome::kSuccess : AppProbeOutcome::kHttpStatus);
    EXPECT_EQ(result.detail, "HTTP " + std::to_string(status));
  }
}

TEST(HttpProbeTest, SendsPathAndHeadersAsTheKubeletDoes) {
  ScriptedApp app({"HTTP/1.0 200 OK\r\n\r\n"});
  AppProbeSpec spec = Http(app.port());
  spec.path = "/ready?full=1";
  spec.headers = {{"X-Probe", "1"}, {"host", "web.example"}, {"X-Empty", ""}};
  AppProbeResult result = RunSocketProbe(spec, Soon());
  EXPECT_TRUE(result.ok()) << result.detail;
  EXPECT_EQ(app.request(),
            "GET /ready?full=1 HTTP/1.1\r\nHost: web.example\r\n"
            "User-Agent: kube-probe/tandem\r\nAccept: */*\r\nX-Probe: 1\r\nX-Empty: \r\n"
            "Connection: close\r\n\r\n");

  ScriptedApp plain({"HTTP/1.1 200 OK\r\n\r\n"});
  ASSERT_TRUE(RunSocketProbe(Http(plain.port()), Soon()).ok());
  EXPECT_EQ(plain.request(),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(plain.port()) +
                "\r\nUser-Agent: kube-probe/tandem\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n");
}

TEST(HttpProbeTest, SkipsInformationalAnswersForTheFinalOne) {
  ScriptedApp hints(
      {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
       "HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\r\n\r\n"});
  AppProbeResult result = RunSocketProbe(Http(hints.port()), Soon());
  EXPECT_TRUE(result.ok()) << result.detail;
  ScriptedApp failing({"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 500 Oops\r\n\r\n"});
  EXPECT_EQ(RunSocketProbe(Http(failing.port()), Soon()).detail, "HTTP 500");
}

TEST(HttpProbeTest, FailsOnWhatIsNotAnHttpAnswer) {
  struct Case {
    std::string answer;
    std::string detail;
  };
  for (const Case& c : std::vector<Case>{
           {"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x status line"},
           {"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line"},
           {"HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x status line"},
           {"HTTP/1.1 099 Low\r\n\r\n", "not an HTTP/1.x status line"},
           {"", "closed without an answer"},
           {"HTTP/1.1 200", "closed within the answer's head"},
           {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n",
            "closed within the answer's head"},
       }) {
    ScriptedApp app({c.answer});
    AppProbeResult result = RunSocketProbe(Http(app.port()), Soon());
    EXPECT_EQ(result.outcome, AppProbeOutcome::kBadResponse) << c.answer;
    EXPECT_EQ(result.detail, c.detail) << c.answer;
  }
}

TEST(HttpProbeTest, FailsAsRefusedWhenNothingListens) {
  LoopbackSocket bound(/*listening=*/false);
  ASSERT_TRUE(bound.ok());
  EXPECT_EQ(RunSocketProbe(Http(bound.port()), Soon()).outcome,
            AppProbeOutcome::kRefused);
}

TEST(HttpProbeTest, TimesOutOnASilentApp) {
  ScriptedApp silent(ScriptedApp::Silent());
  AppProbeResult result =
      RunSocketProbe(Http(silent.port()), absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(result.outcome, AppProbeOutcome::kTimeout);
  EXPECT_EQ(result.detail, "no answer: timed out");

  result = RunSocketProbe(Http(silent.port(), /*https=*/true),
                          absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(result.outcome, AppProbeOutcome::kTimeout);
  EXPECT_EQ(result.detail, "TLS handshake: timed out");
}

TEST(HttpProbeTest, HttpsDoesNotCheckTheAppsCertificate) {
  bssl::UniquePtr<SSL_CTX> tls = ServerTlsContext();
  ScriptedApp ok(ScriptedApp::Tls("HTTP/1.1 200 OK\r\n\r\n", tls.get()));
  AppProbeSpec spec = Http(ok.port(), /*https=*/true);
  spec.path = "/healthz";
  AppProbeResult result = RunSocketProbe(spec, Soon());
  EXPECT_TRUE(result.ok()) << result.detail;
  EXPECT_EQ(ok.request().substr(0, 26), "GET /healthz HTTP/1.1\r\nHos");

  ScriptedApp failing(ScriptedApp::Tls("HTTP/1.1 500 Oops\r\n\r\n", tls.get()));
  EXPECT_EQ(RunSocketProbe(Http(failing.port(), /*https=*/true), Soon()).outcome,
            AppProbeOutcome::kHttpStatus);
}

TEST(HttpProbeTest, HttpsToAPlaintextAppFailsAsTls) {
  ScriptedApp::Options options;
  options.answer = "HTTP/1.1 200 OK\r\n\r\n";
  options.answer_at_once = true;  // it would wait for the end of a head TLS never sends
  ScriptedApp plain(options);
  AppProbeResult result = RunSocketProbe(Http(plain.port(), /*https=*/true), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kTls) << result.detail;
  EXPECT_EQ(result.detail.substr(0, 15), "TLS handshake: ") << result.detail;
}

}  // namespace
}  // namespace tandem::agent
