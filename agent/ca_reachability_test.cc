#include "agent/ca_reachability.h"

#include "common/metrics/registry.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"

namespace tandem::agent {
namespace {

TEST(CaReachabilityTest, AnyAnswerReachedTheCaButNoConnectionOrNoAnswerDidNot) {
  EXPECT_TRUE(ReachedCa(absl::StatusCode::kOk));
  EXPECT_TRUE(ReachedCa(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(ReachedCa(absl::StatusCode::kUnauthenticated));
  EXPECT_TRUE(ReachedCa(absl::StatusCode::kUnimplemented));
  EXPECT_FALSE(ReachedCa(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(ReachedCa(absl::StatusCode::kDeadlineExceeded));
}

TEST(CaReachabilityTest, TheGaugeAppearsWithTheFirstCallAndFollowsTheLast) {
  metrics::Registry registry;
  auto gauge = [&] {
    return tandem::testing::MetricValue(registry.RenderPrometheus(),
                                        "tandem_agent_ca_reachable");
  };
  EXPECT_EQ(gauge(), -1) << "no series before any call";
  RecordCaCall(registry, absl::StatusCode::kUnavailable);
  EXPECT_EQ(gauge(), 0);
  RecordCaCall(registry, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(gauge(), 1);
  RecordCaCall(registry, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(gauge(), 0);
}

}  // namespace
}  // namespace tandem::agent
