// The revocation admin endpoint over real loopback HTTP, driven by the CLI's client.
#include "controlplane/revocation/revocation_admin.h"

#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "controlplane/revocation/admin_client.h"
#include "gtest/gtest.h"
#include "tests/support/pki_test_util.h"

namespace tandem::controlplane {
namespace {

class RevocationAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-revocation-admin-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = *RevocationStore::Open({dir_ + "/state", absl::Hours(24)}, absl::Now());
    absl::StatusOr<std::unique_ptr<RevocationAdmin>> admin =
        RevocationAdmin::Create({"127.0.0.1:0", store_.get(), nullptr});
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
    ASSERT_TRUE(admin_->Start().ok());
    address_ = absl::StrCat("127.0.0.1:", admin_->port());
  }
  void TearDown() override {
    admin_->Stop();
    std::filesystem::remove_all(dir_);
  }
  AdminClient::Reply Post(const std::string& body) {
    absl::StatusOr<AdminClient::Reply> reply =
        AdminClient::Call(address_, "POST", "/revoke", body);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : AdminClient::Reply{};
  }

  std::string dir_;
  std::unique_ptr<RevocationStore> store_;
  std::unique_ptr<RevocationAdmin> admin_;
  std::string address_;
};

TEST_F(RevocationAdminTest, RevokesAnIdentityAndListsIt) {
  AdminClient::Reply reply = Post(AdminClient::RevokeSpiffeIdBody(
      "spiffe://cluster.local/ns/shop/sa/cart", "stolen \"key\""));
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_NE(reply.body.find(R"("spiffe_id":"spiffe://cluster.local/ns/shop/sa/cart")"),
            std::string::npos)
      << reply.body;
  EXPECT_TRUE(
      store_->IsSpiffeIdRevoked("spiffe://cluster.local/ns/shop/sa/cart", absl::Now()));
  absl::StatusOr<AdminClient::Reply> list =
      AdminClient::Call(address_, "GET", "/revocations", "");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->status, 200);
  EXPECT_NE(list->body.find(R"("reason":"stolen \"key\"")"), std::string::npos)
      << list->body;
}

TEST_F(RevocationAdminTest, RevokesACertificateBySerialAndNotAfterFromItsPem) {
  pki::CertificateAuthority ca = pki::testing::MakeRoot();
  pki::WorkloadCredentials workload =
      pki::testing::MakeWorkload(ca, "spiffe://cluster.local/ns/a/sa/b");
  absl::StatusOr<std::string> body = AdminClient::RevokeCertificateBody(
      pki::Certificate::ChainToPem(workload.chain), "");
  ASSERT_TRUE(body.ok()) << body.status();
  AdminClient::Reply reply = Post(*body);
  EXPECT_EQ(reply.status, 200) << reply.body;
  std::vector<tandem::policy::v1::Revocation> live = store_->Live(absl::Now());
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].serial_hex(), workload.chain[0].SerialHex());
  EXPECT_EQ(live[0].expires_unix_seconds(),
            absl::ToUnixSeconds(workload.chain[0].not_after()));
  EXPECT_FALSE(AdminClient::RevokeCertificateBody("not a pem", "").ok());
}

TEST_F(RevocationAdminTest, EntriesTakeCloseOpenConnectionsFromThePolicyInForce) {
  std::ofstream(dir_ + "/policy.yaml") << "revocation: {closeOpenConnections: true}\n";
  std::unique_ptr<PolicyWatcher> policy = *PolicyWatcher::Create(dir_ + "/policy.yaml");
  std::unique_ptr<RevocationAdmin> admin =
      *RevocationAdmin::Create({"127.0.0.1:0", store_.get(), policy.get()});
  http::HttpResponse reply = admin->Revoke(
      {"POST", "/revoke", "", AdminClient::RevokeSpiffeIdBody("spiffe://td/x", "")});
  EXPECT_EQ(reply.status, 200) << reply.body;
  ASSERT_EQ(store_->Live(absl::Now()).size(), 1u);
  EXPECT_TRUE(store_->Live(absl::Now())[0].close_open_connections());
}

TEST_F(RevocationAdminTest, RefusesBadRequestsNamingTheField) {
  struct Case {
    std::string body;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"serial": "xyz", "not_after": "2030-01-01T00:00:00Z"})",
            "error: serial: serial \"xyz\" is not hexadecimal (e.g. 1f3a9c or "
            "1F:3A:9C)\n"},
           {R"({"serial": "ab"})",
            "error: request:1: not_after: required with serial (RFC 3339)\n"},
           {R"({"serial": "ab", "not_after": "tomorrow"})",
            "error: not_after \"tomorrow\" is not RFC 3339 (Failed to parse input)\n"},
           {R"({"spiffe_id": "spiffe://td/x", "force": true})",
            "error: request:1: force: unknown key (allowed: serial, not_after, "
            "spiffe_id, reason)\n"},
           {R"({"spiffe_id": "http://x"})",
            "error: spiffe_id: invalid SPIFFE ID \"http://x\": scheme must be "
            "\"spiffe://\" (lower case)\n"},
           {R"({"reason": "x"})",
            "error: request:1: (request): give either serial (with not_after) or "
            "spiffe_id\n"},
           {R"({"spiffe_id": ["a"]})",
            "error: request:1: spiffe_id: expected a string\n"},
       }) {
    AdminClient::Reply reply = Post(c.body);
    EXPECT_EQ(reply.status, 400) << c.body;
    EXPECT_EQ(reply.body, c.error) << c.body;
  }
  EXPECT_TRUE(store_->Live(absl::Now()).empty());
  absl::StatusOr<AdminClient::Reply> get =
      AdminClient::Call(address_, "GET", "/revoke", "");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 405);
}

TEST(RevocationAdminAddressTest, RefusesNonLoopback) {
  for (const char* address : {"0.0.0.0:15010", "10.1.2.3:15010", "[::]:15010",
                              "example.com:15010", "127.0.0.1", "127.0.0.1:99999"}) {
    absl::StatusOr<LoopbackAddress> parsed = ParseLoopbackAddress(address);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  EXPECT_NE(ParseLoopbackAddress("0.0.0.0:15010").status().message().find("not loopback"),
            std::string::npos);
  for (const char* address :
       {"127.0.0.1:15010", "127.9.9.9:0", "[::1]:1", "localhost:2"}) {
    EXPECT_TRUE(ParseLoopbackAddress(address).ok()) << address;
  }
  char tmpl[] = "/tmp/tandem-revocation-admin-test-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto store = *RevocationStore::Open({dir + "/s"}, absl::Now());
  EXPECT_EQ(RevocationAdmin::Create({"0.0.0.0:0", store.get(), nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      AdminClient::Call("192.0.2.1:15010", "GET", "/revocations", "").status().code(),
      absl::StatusCode::kInvalidArgument)
      << "the CLI never sends to a non-loopback address";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::controlplane
