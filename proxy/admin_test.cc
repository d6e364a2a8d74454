#include "proxy/admin.h"

#include "common/log/log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/support/pki_test_util.h"

namespace tandem::proxy {
namespace {

using tandem::testing::HttpCall;

bool IsJson(const std::string& text) {
  google::protobuf::Struct parsed;
  return google::protobuf::util::JsonStringToMessage(text, &parsed).ok();
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Port 0 everywhere: the endpoints say which ports they got.
    absl::StatusOr<ProxyOptions> options = ParseProxyConfig(
        "{\"outbound_address\": \"127.0.0.1:0\", \"inbound_address\": \"127.0.0.1:0\", "
        "\"admin_address\": \"127.0.0.1:0\", \"metrics_address\": \"127.0.0.1:0\", "
        "\"health_address\": \"127.0.0.1:0\", "
        "\"workers\": 1, \"mesh_cidrs\": [\"10.0.0.0/8\"], \"inbound_ports\": "
        "[{\"port\": 8080, \"allowed_identities\": "
        "[\"spiffe://cluster.local/ns/a/*\"]}]}");
    ASSERT_TRUE(options.ok()) << options.status();
    absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(*options);
    ASSERT_TRUE(proxy.ok());
    proxy_ = *std::move(proxy);
    absl::StatusOr<std::unique_ptr<ProxyEndpoints>> endpoints = ProxyEndpoints::Create(
        proxy_.get(), [] { return std::string("extra_metric 1\n"); });
    ASSERT_TRUE(endpoints.ok()) << endpoints.status();
    endpoints_ = *std::move(endpoints);
    ASSERT_TRUE(endpoints_->Start().ok());
  }
  int admin() const { return endpoints_->admin_port(); }

  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<ProxyEndpoints> endpoints_;
};

TEST_F(AdminTest, ReadinessNeedsListenersAndACertificate) {
  EXPECT_EQ(HttpCall(endpoints_->health_port(), "GET", "/healthz/ready").status, 503);
  EXPECT_EQ(HttpCall(endpoints_->health_port(), "GET", "/healthz/live").status, 200);
  ASSERT_TRUE(proxy_->Start().ok());
  EXPECT_EQ(HttpCall(endpoints_->health_port(), "GET", "/healthz/ready").body,
            "no valid certificate (none yet, or expired)\n");
  pki::CertificateAuthority ca(pki::testing::MakeRoot());
  pki::WorkloadCredentials creds =
      pki::testing::MakeWorkload(ca, "spiffe://cluster.local/ns/a/sa/web");
  ASSERT_TRUE(
      proxy_->tls()
          .UpdateSecret({*creds.key.ToPem(), pki::Certificate::ChainToPem(creds.chain),
                         creds.bundle.ToPem()})
          .ok());
  EXPECT_EQ(HttpCall(endpoints_->health_port(), "GET", "/healthz/ready").status, 200);
  EXPECT_EQ(HttpCall(endpoints_->metrics_port(), "GET", "/healthz/ready").status, 200);

  testing::HttpResult certs = HttpCall(admin(), "GET", "/certs");
  EXPECT_EQ(certs.status, 200);
  EXPECT_TRUE(IsJson(certs.body)) << certs.body;
  for (const char* field :
       {"\"subject\"", "\"spiffe_id\": \"spiffe://cluster.local/ns/a/sa/web\"",
        "\"serial\"", "\"not_after\"", "\"chain_pem\": \"-----BEGIN"}) {
    EXPECT_NE(certs.body.find(field), std::string::npos) << field << " in " << certs.body;
  }
}

TEST_F(AdminTest, CertsSaysWhenThereIsNoCertificate) {
  testing::HttpResult certs = HttpCall(admin(), "GET", "/certs");
  EXPECT_TRUE(IsJson(certs.body)) << certs.body;
  EXPECT_NE(certs.body.find("\"certificate\": null"), std::string::npos) << certs.body;
}

TEST_F(AdminTest, ShowsTheEffectiveConfigWithDefaults) {
  testing::HttpResult config = HttpCall(admin(), "GET", "/config");
  EXPECT_TRUE(IsJson(config.body)) << config.body;
  for (const char* field :
       {"\"max_connections\": 10000", "\"connect_timeout_ms\": 5000",
        "\"mesh_cidrs\": [\"10.0.0.0/8\"]", "\"default_inbound_mode\": \"STRICT\"",
        "\"allowed_identities\": [\"spiffe://cluster.local/ns/a/*\"]"}) {
    EXPECT_NE(config.body.find(field), std::string::npos)
        << field << " in " << config.body;
  }
}

TEST_F(AdminTest, SummarisesConnections) {
  testing::HttpResult connections = HttpCall(admin(), "GET", "/connections");
  EXPECT_TRUE(IsJson(connections.body)) << connections.body;
  EXPECT_NE(connections.body.find("\"inbound\": {\"mtls\": 0, \"plaintext\": 0}"),
            std::string::npos)
      << connections.body;
}

TEST_F(AdminTest, ChangesTheLogLevelAtRunTime) {
  const log::Level before = log::Default().level();
  EXPECT_EQ(HttpCall(admin(), "POST", "/logging?level=debug").status, 200);
  EXPECT_EQ(log::Default().level(), log::Level::kDebug);
  EXPECT_NE(HttpCall(admin(), "GET", "/logging").body.find("\"level\": \"debug\""),
            std::string::npos);
  // Refusals change nothing.
  EXPECT_EQ(HttpCall(admin(), "POST", "/logging?level=loud").status, 400);
  EXPECT_EQ(HttpCall(admin(), "POST", "/logging?verbose").status, 400);
  EXPECT_EQ(log::Default().level(), log::Level::kDebug);
  log::Default().SetLevel(before);
}

TEST_F(AdminTest, StateChangesNeedPost) {
  EXPECT_EQ(HttpCall(admin(), "GET", "/drain").status, 405);
  EXPECT_EQ(HttpCall(admin(), "GET", "/quitquitquit").status, 405);
}

TEST_F(AdminTest, AdminEndpointsAreNotOnTheMetricsPort) {
  EXPECT_EQ(HttpCall(endpoints_->metrics_port(), "GET", "/certs").status, 404);
  EXPECT_EQ(HttpCall(endpoints_->metrics_port(), "POST", "/logging?level=debug").status,
            404);
  testing::HttpResult metrics = HttpCall(endpoints_->metrics_port(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("tandem_proxy_ready 0"), std::string::npos);
  EXPECT_NE(metrics.body.find("extra_metric 1"), std::string::npos);
}

}  // namespace
}  // namespace tandem::proxy
