#include "controlplane/revocation/configmap_revocation_backend.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/revocation/revocation_store.h"
#include "gtest/gtest.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;

constexpr char kConfigMap[] =
    "/api/v1/namespaces/tandem-system/configmaps/tandem-revocations";

class ConfigMapRevocationBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    client_ = *KubeClient::Create(standin_->ClientOptions());
  }
  std::unique_ptr<RevocationStore> Open() {
    absl::StatusOr<std::unique_ptr<RevocationStore>> store =
        RevocationStore::Open(std::make_unique<ConfigMapRevocationBackend>(
                                  client_.get(), "tandem-system", "tandem-revocations"),
                              absl::Hours(24), absl::Now());
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }
  std::string Stored() {
    absl::StatusOr<HttpsResponse> r = standin_->Call("GET", kConfigMap);
    if (!r.ok() || r->status != 200) return "";
    return ConfigMapRevocationBackend::ListOf(nlohmann::json::parse(r->body));
  }

  std::unique_ptr<KubeStandin> standin_;
  std::unique_ptr<KubeClient> client_;
};

TEST_F(ConfigMapRevocationBackendTest, TwoReplicasRevokingAtOnceKeepBoth) {
  std::unique_ptr<RevocationStore> a = Open();
  std::unique_ptr<RevocationStore> b = Open();  // no ConfigMap yet: both start empty
  ASSERT_TRUE(
      a->RevokeSpiffeId("spiffe://cluster.local/ns/shop/sa/one", "", false, absl::Now())
          .ok());
  // b loaded an empty list before a wrote; its write starts from a fresh GET, so a's
  // entry stays.
  ASSERT_TRUE(
      b->RevokeSpiffeId("spiffe://cluster.local/ns/shop/sa/two", "", false, absl::Now())
          .ok());
  std::string stored = Stored();
  EXPECT_TRUE(absl::StrContains(stored, "sa/one")) << stored;
  EXPECT_TRUE(absl::StrContains(stored, "sa/two")) << stored;
  EXPECT_EQ(b->Live(absl::Now()).size(), 2u);
  // a learns b's through the watch (here: Reload with the stored list).
  EXPECT_EQ(*a->Reload(stored, absl::Now()), true);
  EXPECT_TRUE(a->IsSpiffeIdRevoked("spiffe://cluster.local/ns/shop/sa/two", absl::Now()));
  EXPECT_EQ(*a->Reload(stored, absl::Now()), false);  // no change, no new generation
  // A conflicting PUT (someone wrote between our GET and PUT) is redone, too.
  ASSERT_TRUE(
      standin_->Control("fail", absl::StrCat(R"({"method":"PUT","path":")", kConfigMap,
                                             R"(","status":409,"count":1})")));
  ASSERT_TRUE(
      a->RevokeSerial("1f", absl::Now() + absl::Hours(1), "", false, absl::Now()).ok());
  EXPECT_TRUE(absl::StrContains(Stored(), "\"serialHex\":\"1f\""));
}

TEST_F(ConfigMapRevocationBackendTest, AFailedWriteIsNotInForce) {
  std::unique_ptr<RevocationStore> a = Open();
  ASSERT_TRUE(standin_->Control(
      "fail",
      R"({"method":"POST","path":"/api/v1/namespaces/tandem-system/configmaps","status":403,"count":1})"));
  absl::StatusOr<tandem::policy::v1::Revocation> r =
      a->RevokeSpiffeId("spiffe://cluster.local/ns/shop/sa/one", "", false, absl::Now());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(a->Live(absl::Now()).empty());
  EXPECT_EQ(Stored(), "");
}

TEST_F(ConfigMapRevocationBackendTest, ACorruptListIsRefusedAndTheLastGoodOneStays) {
  std::unique_ptr<RevocationStore> a = Open();
  ASSERT_TRUE(
      a->RevokeSpiffeId("spiffe://cluster.local/ns/shop/sa/one", "", false, absl::Now())
          .ok());
  absl::StatusOr<bool> reloaded = a->Reload("not json\n", absl::Now());
  EXPECT_EQ(reloaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StartsWith(
      reloaded.status().message(),
      "configmap tandem-system/tandem-revocations:1: not a revocation entry"))
      << reloaded.status();
  EXPECT_EQ(a->Live(absl::Now()).size(), 1u);
  EXPECT_EQ(*a->Reload("", absl::Now()), true);  // the ConfigMap was deleted
  EXPECT_TRUE(a->Live(absl::Now()).empty());
}

}  // namespace
}  // namespace tandem::controlplane
