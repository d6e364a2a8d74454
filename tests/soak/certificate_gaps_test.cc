#include "tests/soak/certificate_gaps.h"

#include "gtest/gtest.h"

namespace tandem::testing {
namespace {

absl::Time At(double seconds) {
  return absl::FromUnixMillis(1000000) + absl::Seconds(seconds);
}

ServedCertificate Cert(double seen, double not_after) {
  return {At(seen), "", At(not_after)};
}

TEST(CertificateGapsTest, FindsNoGapWhenEachCertificateArrivesBeforeTheLastExpires) {
  EXPECT_TRUE(FindGaps({Cert(0, 2), Cert(1, 3), Cert(2, 4)}, At(3.5)).empty());
}

TEST(CertificateGapsTest, AGapRunsFromNotAfterUntilTheNextCertificateIsSeen) {
  std::vector<CertificateGap> gaps = FindGaps({Cert(0, 2), Cert(3.5, 5.5)}, At(5));
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].when.start, At(2));
  EXPECT_EQ(gaps[0].when.end, At(3.5));
  EXPECT_FALSE(gaps[0].excused);
}

TEST(CertificateGapsTest, TheLastCertificateExpiringBeforeTheEndLeavesAGapToTheEnd) {
  std::vector<CertificateGap> gaps = FindGaps({Cert(0, 2)}, At(3));
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].when.start, At(2));
  EXPECT_EQ(gaps[0].when.end, At(3));
}

struct ExcuseCase {
  const char* name;
  double obstacle_start, obstacle_end;
  double gap_start;
  bool excused;
};

TEST(CertificateGapsTest, AGapIsExcusedOnlyWhenItBeganDuringAnObstacleOrItsAllowance) {
  const ExcuseCase cases[] = {
      {"expired while the CA was down", 1, 5, 3, true},
      {"expired the moment the fault began", 3, 5, 3, true},
      {"expired within the allowance after the CA returned", 1, 5, 5.9, true},
      {"expired after the allowance: the backoff overslept", 1, 5, 6.1, false},
      {"expired before the fault began", 4, 5, 3, false},
  };
  for (const ExcuseCase& c : cases) {
    std::vector<CertificateGap> gaps = {
        {.when = {At(c.gap_start), At(c.gap_start + 10)}}};
    ExcuseGaps({{At(c.obstacle_start), At(c.obstacle_end)}}, absl::Seconds(1), &gaps);
    EXPECT_EQ(gaps[0].excused, c.excused) << c.name;
  }
}

TEST(CertificateGapsTest, AnExcusedGapCoversTheWholeRecoveryUpToTheNextCertificate) {
  std::vector<CertificateGap> gaps = {{.when = {At(3), At(20)}}};
  ExcuseGaps({{At(1), At(5)}}, absl::Seconds(1), &gaps);
  EXPECT_TRUE(InsideExcusedGap(gaps, At(19), At(19.1)));
  EXPECT_EQ(gaps[0].expired_after_fault, absl::Seconds(-2));
  EXPECT_EQ(gaps[0].recovered_after_fault, absl::Seconds(15));
  EXPECT_EQ(gaps[0].excused_by, 0);
}

TEST(CertificateGapsTest, TheRecoveryCountsFromTheLastFaultDuringTheGap) {
  // The CA down 1-5 s, the certificate out at 3 s, the CA down again 7-9 s, the next
  // certificate at 11 s: 2 s of recovery after the faults, not 6.
  std::vector<CertificateGap> gaps = {{.when = {At(3), At(11)}}};
  ExcuseGaps({{At(1), At(5)}, {At(7), At(9)}, {At(12), At(13)}}, absl::Seconds(1), &gaps);
  EXPECT_TRUE(gaps[0].excused);
  EXPECT_EQ(gaps[0].excused_by, 0);
  EXPECT_EQ(gaps[0].recovered_after, 1);
  EXPECT_EQ(gaps[0].expired_after_fault, absl::Seconds(-2));
  EXPECT_EQ(gaps[0].recovered_after_fault, absl::Seconds(2));
}

TEST(CertificateGapsTest, AFailureIsInsideWhenItsSpanOverlapsAnExcusedGap) {
  std::vector<CertificateGap> gaps = {{.when = {At(3), At(4)}, .excused = true},
                                      {.when = {At(8), At(9)}, .excused = false}};
  EXPECT_TRUE(InsideExcusedGap(gaps, At(3.5), At(3.6)));
  EXPECT_TRUE(InsideExcusedGap(gaps, At(2.9), At(3.0)));  // ended as the gap began
  EXPECT_TRUE(InsideExcusedGap(gaps, At(4.0), At(4.2)));  // began as it ended
  EXPECT_FALSE(InsideExcusedGap(gaps, At(4.1), At(4.2)));
  EXPECT_FALSE(InsideExcusedGap(gaps, At(8.5), At(8.6))) << "in a gap nothing excuses";
  EXPECT_FALSE(InsideExcusedGap(gaps, At(1), At(2)));
}

}  // namespace
}  // namespace tandem::testing
