#include "controlplane/injection/injector_endpoint.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"
#include "common/pki/certificate.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

constexpr char kServiceName[] = "tandem-injector.tandem-system.svc";

struct Fetched {
  std::string error;  // why the TLS handshake failed; empty on success
  std::string serial;
  std::string response;
};

// One HTTPS request to 127.0.0.1:`port`, verifying the server against `ca_pem` and
// kServiceName, as the API server does for a service reference.
Fetched Fetch(uint16_t port, const std::string& ca_pem, const std::string& request) {
  Fetched out;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    out.error = "connect failed";
    return out;
  }
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  absl::StatusOr<std::vector<pki::Certificate>> roots =
      pki::Certificate::ChainFromPem(ca_pem);
  EXPECT_TRUE(roots.ok()) << roots.status();
  for (const pki::Certificate& c : *roots) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), c.get());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), kServiceName);
  X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl.get()), kServiceName,
                              sizeof(kServiceName) - 1);
  if (SSL_connect(ssl.get()) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    close(fd);
    out.error = buf;
    return out;
  }
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl.get()));
  out.serial = pki::Certificate::FromX509(peer.get()).SerialHex();
  SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
  char buf[4096];
  int n;
  while ((n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) out.response.append(buf, n);
  ERR_clear_error();
  ssl.reset();
  close(fd);
  return out;
}

std::string Post(const std::string& body) {
  return absl::StrCat("POST /inject HTTP/1.1\r\nContent-Type: application/json\r\n",
                      "Content-Length: ", body.size(), "\r\n\r\n", body);
}

class InjectorEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-injector-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    CaCoreOptions options;
    options.root_dir = dir_ + "/root";
    absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options, absl::Now());
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = *std::move(core);
    options_.listen_address = "127.0.0.1:0";
    options_.registry = &registry_;
  }
  void TearDown() override {
    endpoint_.reset();
    std::filesystem::remove_all(dir_);
  }
  void StartEndpoint(http::HttpServer::Handler inject) {
    absl::StatusOr<std::unique_ptr<InjectorEndpoint>> endpoint =
        InjectorEndpoint::Create(options_, core_.get(), std::move(inject));
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
    ASSERT_TRUE(endpoint_->Start().ok());
  }
  uint64_t Renewals(const std::string& result) {
    return registry_
        .GetCounter("tandem_injector_certificate_renewals_total",
                    "Re-issues of the injector serving certificate, by result.",
                    {{"result", result}})
        .Value();
  }

  std::string dir_;
  metrics::Registry registry_;
  std::unique_ptr<CaCore> core_;
  InjectorEndpoint::Options options_;
  std::unique_ptr<InjectorEndpoint> endpoint_;
};

TEST_F(InjectorEndpointTest, ServesInjectWithACertificateFromTheMeshCa) {
  StartEndpoint([](const http::HttpRequest& request) {
    return http::HttpResponse{200, "application/json",
                              absl::StrCat("{\"got\":", request.body.size(), "}")};
  });
  // A body over the admin server's 64 KiB default, like a large pod's AdmissionReview.
  std::string review =
      "{\"kind\":\"AdmissionReview\",\"pad\":\"" + std::string(200 * 1024, 'x') + "\"}";
  Fetched got = Fetch(endpoint_->port(), core_->trust_bundle_pem(), Post(review));
  ASSERT_EQ(got.error, "");
  EXPECT_EQ(got.serial, endpoint_->serving_serial());
  EXPECT_TRUE(absl::StartsWith(got.response, "HTTP/1.1 200 OK\r\n")) << got.response;
  EXPECT_TRUE(absl::StrContains(got.response, "Content-Type: application/json\r\n"));
  EXPECT_TRUE(absl::EndsWith(got.response, absl::StrCat("{\"got\":", review.size(), "}")))
      << got.response.substr(0, 200);
  EXPECT_NE(registry_.RenderPrometheus().find(
                "tandem_http_requests_total{code=\"200\",server=\"injector\"} 1\n"),
            std::string::npos);
}

TEST_F(InjectorEndpointTest, RefusesToBeMadeWithoutAnInjectFunction) {
  absl::StatusOr<std::unique_ptr<InjectorEndpoint>> made =
      InjectorEndpoint::Create(options_, core_.get(), nullptr);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status(),
            absl::InvalidArgumentError("the injector endpoint needs an inject function"));
}

TEST_F(InjectorEndpointTest, RenewsItsCertificateAtHalfLifeWithoutRestarting) {
  options_.certificate_ttl = absl::Seconds(2);  // renewed after 0.8-1 s
  StartEndpoint([](const http::HttpRequest&) { return http::HttpResponse{}; });
  const std::string first = endpoint_->serving_serial();
  ASSERT_EQ(Fetch(endpoint_->port(), core_->trust_bundle_pem(), Post("{}")).serial,
            first);
  // Waits for the renewal (bounded).
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (endpoint_->serving_serial() == first && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const std::string second = endpoint_->serving_serial();
  ASSERT_NE(second, first);
  EXPECT_GE(Renewals("ok"), 1u);
  EXPECT_EQ(Renewals("error"), 0u);
  Fetched got = Fetch(endpoint_->port(), core_->trust_bundle_pem(), Post("{}"));
  ASSERT_EQ(got.error, "");
  EXPECT_NE(got.serial, first);
}

TEST_F(InjectorEndpointTest, RefusesBadOptions) {
  auto answer = [](const http::HttpRequest&) { return http::HttpResponse{}; };
  options_.dns_names = {};
  EXPECT_EQ(InjectorEndpoint::Create(options_, core_.get(), answer).status().message(),
            "injector: at least one DNS name is required");
  options_.dns_names = {"bad name"};
  absl::Status status = InjectorEndpoint::Create(options_, core_.get(), answer).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "injector certificate: bad DNS name \"bad name\"");
  options_.dns_names = {kServiceName};
  options_.listen_address = "nowhere";
  EXPECT_EQ(InjectorEndpoint::Create(options_, core_.get(), answer).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::controlplane
