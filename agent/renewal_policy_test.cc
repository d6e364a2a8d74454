#include "agent/renewal_policy.h"

#include "gtest/gtest.h"

namespace tandem::agent {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

struct Case {
  const char* name;
  absl::Time not_before, not_after, now;
  int failures;
  double random;
  absl::Time expected;
};

TEST(RenewalPolicyTest, Table) {
  RenewalPolicy p;  // 0.5 fraction, 0.1 jitter, 200 ms .. 30 s backoff
  const absl::Time none = absl::InfinitePast();
  const Case cases[] = {
      {"halfway, no jitter", kT0, kT0 + absl::Hours(2), kT0, 0, 0.0,
       kT0 + absl::Hours(1)},
      {"halfway, full jitter", kT0, kT0 + absl::Hours(2), kT0, 0, 1.0,
       kT0 + absl::Hours(1) - absl::Minutes(12)},
      {"already past the point: now", kT0, kT0 + absl::Hours(2), kT0 + absl::Hours(1.5),
       0, 0.0, kT0 + absl::Hours(1.5)},
      {"no cert: first retry, min jitter", none, none, kT0, 1, 0.0,
       kT0 + absl::Milliseconds(100)},
      {"no cert: first retry, max jitter", none, none, kT0, 1, 1.0,
       kT0 + absl::Milliseconds(200)},
      {"no cert: backoff doubles", none, none, kT0, 3, 1.0,
       kT0 + absl::Milliseconds(800)},
      {"no cert: backoff capped", none, none, kT0, 30, 1.0, kT0 + absl::Seconds(30)},
      {"no cert yet, no failure: retry soon", none, none, kT0, 0, 1.0,
       kT0 + absl::Milliseconds(200)},
      {"failing with cert: backoff", kT0, kT0 + absl::Hours(2), kT0 + absl::Hours(1), 2,
       1.0, kT0 + absl::Hours(1) + absl::Milliseconds(400)},
      {"failing near expiry: within a quarter of what is left", kT0,
       kT0 + absl::Seconds(10), kT0 + absl::Seconds(9), 30, 1.0,
       kT0 + absl::Seconds(9.25)},
      {"failing, 2 s left: the 1.6 s backoff is cut to 0.5 s", kT0,
       kT0 + absl::Seconds(4), kT0 + absl::Seconds(2), 4, 1.0, kT0 + absl::Seconds(2.5)},
      {"failing, 2 s left, least jitter: half of the 0.5 s cap, never past it", kT0,
       kT0 + absl::Seconds(4), kT0 + absl::Seconds(2), 4, 0.0, kT0 + absl::Seconds(2.25)},
      {"failing, 0.1 s left: the floor", kT0, kT0 + absl::Seconds(4),
       kT0 + absl::Seconds(3.9), 5, 1.0, kT0 + absl::Seconds(3.95)},
      {"failing, cap above the backoff: backoff", kT0, kT0 + absl::Hours(2),
       kT0 + absl::Hours(1), 1, 1.0, kT0 + absl::Hours(1) + absl::Milliseconds(200)},
      {"failing 1 s after expiry: the 1.6 s backoff is cut to 1 s", kT0,
       kT0 + absl::Seconds(4), kT0 + absl::Seconds(5), 4, 1.0, kT0 + absl::Seconds(6)},
      {"just expired after 11 capped retries: the initial backoff, not 30 s", kT0,
       kT0 + absl::Seconds(4), kT0 + absl::Seconds(4.01), 11, 1.0,
       kT0 + absl::Seconds(4.21)},
      {"long expired: plain backoff", kT0, kT0 + absl::Seconds(4), kT0 + absl::Hours(1),
       30, 1.0, kT0 + absl::Hours(1) + absl::Seconds(30)},
      {"expired 10 s ago, 3 failures: plain backoff", kT0, kT0 + absl::Seconds(4),
       kT0 + absl::Seconds(14), 3, 1.0, kT0 + absl::Seconds(14.8)},
      {"short-lived cert: renews at half", kT0, kT0 + absl::Seconds(4), kT0, 0, 0.0,
       kT0 + absl::Seconds(2)},
      {"2 s certificate living 2 s: half is 1 s before expiry, the margin", kT0,
       kT0 + absl::Seconds(2), kT0, 0, 0.0, kT0 + absl::Seconds(1)},
      {"2 s certificate living 1.5 s (notAfter in whole seconds): 1 s before expiry, "
       "not 0.75 s",
       kT0, kT0 + absl::Seconds(1.5), kT0, 0, 0.0, kT0 + absl::Seconds(0.5)},
      {"living 1 s: not before a quarter of its life, 0.75 s before expiry", kT0,
       kT0 + absl::Seconds(1), kT0, 0, 0.0, kT0 + absl::Seconds(0.25)},
      {"living 1 s, full jitter: still a quarter in", kT0, kT0 + absl::Seconds(1), kT0, 0,
       1.0, kT0 + absl::Seconds(0.25)},
      {"living 1 s, arrived late: now", kT0, kT0 + absl::Seconds(1),
       kT0 + absl::Seconds(0.4), 0, 0.0, kT0 + absl::Seconds(0.4)},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NextRenewal(p, c.not_before, c.not_after, c.now, c.failures, c.random),
              c.expected)
        << c.name;
  }
}

TEST(RenewalPolicyTest, HonoursConfiguredFraction) {
  RenewalPolicy p;
  p.renew_fraction = 0.8;
  p.jitter_fraction = 0;
  EXPECT_EQ(NextRenewal(p, kT0, kT0 + absl::Hours(10), kT0, 0, 0.7),
            kT0 + absl::Hours(8));
  // A fraction below the margin's earliest point is the operator's choice: kept.
  p.renew_fraction = 0.1;
  EXPECT_EQ(NextRenewal(p, kT0, kT0 + absl::Seconds(10), kT0, 0, 0.7),
            kT0 + absl::Seconds(1));
}

TEST(RenewalPolicyTest, HonoursConfiguredMargin) {
  RenewalPolicy p;
  p.jitter_fraction = 0;
  p.min_margin = absl::Minutes(30);
  EXPECT_EQ(NextRenewal(p, kT0, kT0 + absl::Hours(1), kT0, 0, 0.5),
            kT0 + absl::Minutes(30));
  EXPECT_EQ(NextRenewal(p, kT0, kT0 + absl::Minutes(50), kT0, 0, 0.5),
            kT0 + absl::Minutes(20));
  EXPECT_EQ(NextRenewal(p, kT0, kT0 + absl::Minutes(20), kT0, 0, 0.5),
            kT0 + absl::Minutes(5));
}

TEST(RenewalPolicyTest, ARetryAfterTheCaWasUnreachableGoesWithinTheJitterOnceItAnswers) {
  RenewalPolicy p;  // 1 s of jitter
  const absl::Time backoff_end = kT0 + absl::Seconds(30);
  EXPECT_EQ(RetryWhenReachable(p, backoff_end, kT0, 0.0), kT0);
  EXPECT_EQ(RetryWhenReachable(p, backoff_end, kT0, 0.5), kT0 + absl::Milliseconds(500));
  EXPECT_EQ(RetryWhenReachable(p, backoff_end, kT0, 1.0), kT0 + absl::Seconds(1));
  // Never later than the backoff (already shortened by the certificate's RetryCap).
  EXPECT_EQ(RetryWhenReachable(p, kT0 + absl::Milliseconds(300), kT0, 1.0),
            kT0 + absl::Milliseconds(300));
  p.reachable_jitter = absl::Seconds(4);
  EXPECT_EQ(RetryWhenReachable(p, backoff_end, kT0, 0.25), kT0 + absl::Seconds(1));
}

}  // namespace
}  // namespace tandem::agent
