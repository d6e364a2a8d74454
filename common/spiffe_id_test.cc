#include "common/spiffe_id.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(SpiffeIdTest, ParsesWorkloadId) {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse("spiffe://cluster.local/ns/shop/sa/cart");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->trust_domain(), "cluster.local");
  EXPECT_EQ(id->path(), "/ns/shop/sa/cart");
  EXPECT_EQ(id->ToString(), "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_EQ(id->KubernetesNamespace(), "shop");
  EXPECT_EQ(id->KubernetesServiceAccount(), "cart");
}

TEST(SpiffeIdTest, ParsesTrustDomainOnlyId) {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse("spiffe://example.org");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->path(), "");
  EXPECT_EQ(id->KubernetesNamespace(), "");
}

TEST(SpiffeIdTest, BuildsWorkloadId) {
  absl::StatusOr<SpiffeId> id = SpiffeId::ForWorkload("td", "default", "web");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->ToString(), "spiffe://td/ns/default/sa/web");
  EXPECT_FALSE(SpiffeId::ForWorkload("td", "", "web").ok());
  EXPECT_FALSE(SpiffeId::ForWorkload("TD", "a", "b").ok());
}

TEST(SpiffeIdTest, ComparesByValue) {
  EXPECT_EQ(*SpiffeId::Parse("spiffe://a/b"), *SpiffeId::Parse("spiffe://a/b"));
  EXPECT_FALSE(*SpiffeId::Parse("spiffe://a/b") == *SpiffeId::Parse("spiffe://a/c"));
}

struct BadId {
  const char* input;
  const char* reason;
};

class SpiffeIdRefusalTest : public testing::TestWithParam<BadId> {};

TEST_P(SpiffeIdRefusalTest, RefusesWithReason) {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(GetParam().input);
  ASSERT_FALSE(id.ok()) << GetParam().input;
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(id.status().message().find(GetParam().reason), std::string::npos)
      << id.status();
}

INSTANTIATE_TEST_SUITE_P(
    Spec, SpiffeIdRefusalTest,
    testing::Values(
        BadId{"", "empty"}, BadId{"http://td/x", "scheme"},
        BadId{"SPIFFE://td/x", "scheme"}, BadId{"spiffe://", "trust domain is missing"},
        BadId{"spiffe:///path", "trust domain is missing"},
        BadId{"spiffe://Upper/x", "lower-case"}, BadId{"spiffe://td:8080/x", "port"},
        BadId{"spiffe://user@td/x", "userinfo"}, BadId{"spiffe://td/x?q=1", "query"},
        BadId{"spiffe://td/x#frag", "fragment"}, BadId{"spiffe://td/", "trailing"},
        BadId{"spiffe://td//x", "empty segment"}, BadId{"spiffe://td/./x", "'.'"},
        BadId{"spiffe://td/a/../b", "'..'"}, BadId{"spiffe://td/a b", "[A-Za-z0-9._-]"},
        BadId{"spiffe://td/%41", "[A-Za-z0-9._-]"}));

TEST(SpiffeIdTest, RefusesOverlongId) {
  std::string long_id = "spiffe://td/" + std::string(2100, 'a');
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(long_id);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("2048"), std::string::npos);
}

}  // namespace
}  // namespace tandem
