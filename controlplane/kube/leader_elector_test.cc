#include "controlplane/kube/leader_elector.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;
using ::tandem::testing::WaitFor;

constexpr char kLease[] =
    "/apis/coordination.k8s.io/v1/namespaces/tandem-system/leases/tandem-ca";

class LeaderElectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    client_ = *KubeClient::Create(standin_->ClientOptions());
  }

  std::unique_ptr<LeaderElector> Elector(const std::string& identity) {
    LeaderElector::Options options;
    options.client = client_.get();
    options.identity = identity;
    options.lease_duration = absl::Seconds(15);
    options.renew_deadline = absl::Seconds(10);
    options.retry_period = absl::Milliseconds(100);
    absl::StatusOr<std::unique_ptr<LeaderElector>> elector =
        LeaderElector::Create(options);
    EXPECT_TRUE(elector.ok()) << elector.status();
    return *std::move(elector);
  }

  nlohmann::json Lease() {
    absl::StatusOr<HttpsResponse> r = standin_->Call("GET", kLease);
    EXPECT_TRUE(r.ok() && r->status == 200);
    return nlohmann::json::parse(r->body)["spec"];
  }

  std::unique_ptr<KubeStandin> standin_;
  std::unique_ptr<KubeClient> client_;
};

TEST_F(LeaderElectorTest, FirstCandidateCreatesTheLeaseAndRenewsIt) {
  std::unique_ptr<LeaderElector> a = Elector("ca-a");
  const absl::Time t0 = absl::Now();
  ASSERT_EQ(*a->TryAcquireOrRenew(t0), true);
  nlohmann::json spec = Lease();
  EXPECT_EQ(spec["holderIdentity"], "ca-a");
  EXPECT_EQ(spec["leaseDurationSeconds"], 15);
  EXPECT_EQ(spec["leaseTransitions"], 0);
  EXPECT_EQ(spec["acquireTime"], FormatMicroTime(t0));
  EXPECT_EQ(spec["renewTime"], FormatMicroTime(t0));
  ASSERT_EQ(*a->TryAcquireOrRenew(t0 + absl::Seconds(2)), true);
  spec = Lease();
  EXPECT_EQ(spec["renewTime"], FormatMicroTime(t0 + absl::Seconds(2)));
  EXPECT_EQ(spec["acquireTime"], FormatMicroTime(t0));  // a renewal keeps it
  EXPECT_EQ(spec["leaseTransitions"], 0);
}

TEST_F(LeaderElectorTest, AnotherCandidateWaitsAFullLeaseDurationWithoutARenewal) {
  std::unique_ptr<LeaderElector> a = Elector("ca-a");
  std::unique_ptr<LeaderElector> b = Elector("ca-b");
  const absl::Time t0 = absl::Now();
  ASSERT_EQ(*a->TryAcquireOrRenew(t0), true);
  // b first sees the record now (its own clock), whatever renewTime says.
  EXPECT_EQ(*b->TryAcquireOrRenew(t0 + absl::Seconds(1)), false);
  ASSERT_EQ(*a->TryAcquireOrRenew(t0 + absl::Seconds(10)), true);  // renewed
  // 15 s after b first saw a record, but only 5 s after it saw the renewal: held.
  EXPECT_EQ(*b->TryAcquireOrRenew(t0 + absl::Seconds(16)), false);
  EXPECT_EQ(Lease()["holderIdentity"], "ca-a");
  // No renewal for a lease duration: b takes over.
  EXPECT_EQ(*b->TryAcquireOrRenew(t0 + absl::Seconds(32)), true);
  nlohmann::json spec = Lease();
  EXPECT_EQ(spec["holderIdentity"], "ca-b");
  EXPECT_EQ(spec["leaseTransitions"], 1);
  EXPECT_EQ(spec["acquireTime"], FormatMicroTime(t0 + absl::Seconds(32)));
  // a, back, sees b's fresh record and follows.
  EXPECT_EQ(*a->TryAcquireOrRenew(t0 + absl::Seconds(33)), false);
}

TEST_F(LeaderElectorTest, OfTwoCandidatesRacingOneGetsTheConflict) {
  std::unique_ptr<LeaderElector> a = Elector("ca-a");
  std::unique_ptr<LeaderElector> b = Elector("ca-b");
  const absl::Time t0 = absl::Now();
  ASSERT_EQ(*a->TryAcquireOrRenew(t0), true);
  ASSERT_EQ(*b->TryAcquireOrRenew(t0), false);
  // Both see the lease lapse; each reads version N and writes: the second write is 409.
  ASSERT_TRUE(
      standin_->Control("fail", absl::StrCat(R"({"method":"PUT","path":")", kLease,
                                             R"(","status":409,"count":1})")));
  EXPECT_EQ(*b->TryAcquireOrRenew(t0 + absl::Seconds(20)), false);
  EXPECT_EQ(Lease()["holderIdentity"], "ca-a");
  EXPECT_TRUE(absl::StrContains(standin_->Requests(),
                                R"("method": "PUT", "path": ")" + std::string(kLease) +
                                    R"(", "token": "token-1", "status": 409)"));
}

TEST_F(LeaderElectorTest, StoppingTheLeaderReleasesTheLeaseAndTheOtherTakesOver) {
  std::unique_ptr<LeaderElector> a = Elector("ca-a");
  a->Start();
  ASSERT_TRUE(WaitFor([&] { return a->is_leader(); }, absl::Seconds(20)));
  std::unique_ptr<LeaderElector> b = Elector("ca-b");
  b->Start();
  a->Stop();
  EXPECT_FALSE(a->is_leader());
  // Released: b need not wait out the 15 s lease.
  ASSERT_TRUE(WaitFor([&] { return b->is_leader(); }, absl::Seconds(10)));
  EXPECT_EQ(Lease()["holderIdentity"], "ca-b");
  EXPECT_EQ(Lease()["leaseTransitions"], 1);
}

TEST_F(LeaderElectorTest, RefusesInconsistentTimings) {
  LeaderElector::Options options;
  options.client = client_.get();
  options.identity = "x";
  options.renew_deadline = absl::Seconds(20);
  EXPECT_EQ(LeaderElector::Create(options).status().message(),
            "leader election: retry period < renew deadline < lease duration");
  options.identity = "";
  EXPECT_EQ(LeaderElector::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::controlplane
