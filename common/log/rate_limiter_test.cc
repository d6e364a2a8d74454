#include "common/log/rate_limiter.h"

#include "gtest/gtest.h"

namespace tandem::log {
namespace {

class FakeClock {
 public:
  absl::Time Now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }
  RateLimiter::Clock AsClock() {
    return [this] { return Now(); };
  }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
};

TEST(RateLimiterTest, AllowsBurstThenRefusesAndCountsSuppressed) {
  FakeClock clock;
  RateLimiter limiter(3, absl::Seconds(1), clock.AsClock());
  uint64_t suppressed = 99;
  EXPECT_TRUE(limiter.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(limiter.Allow());
  EXPECT_TRUE(limiter.Allow());
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Allow());
  clock.Advance(absl::Milliseconds(340));  // one token back (3 per second)
  EXPECT_TRUE(limiter.Allow(&suppressed));
  EXPECT_EQ(suppressed, 1000u);
  EXPECT_FALSE(limiter.Allow());
}

TEST(RateLimiterTest, RefillsNoMoreThanTheBurst) {
  FakeClock clock;
  RateLimiter limiter(2, absl::Seconds(1), clock.AsClock());
  clock.Advance(absl::Hours(1));
  EXPECT_TRUE(limiter.Allow());
  EXPECT_TRUE(limiter.Allow());
  EXPECT_FALSE(limiter.Allow());
}

TEST(RateLimiterTest, ClockSteppingBackRefillsNothing) {
  FakeClock clock;
  RateLimiter limiter(1, absl::Seconds(1), clock.AsClock());
  EXPECT_TRUE(limiter.Allow());
  clock.Advance(-absl::Hours(1));
  EXPECT_FALSE(limiter.Allow());
  clock.Advance(absl::Hours(1) + absl::Milliseconds(500));
  EXPECT_FALSE(limiter.Allow());  // only 0.5 s after the last allowed call
  clock.Advance(absl::Milliseconds(500));
  EXPECT_TRUE(limiter.Allow());
}

TEST(RateLimiterTest, NonPositivePeriodMeansUnlimited) {
  RateLimiter limiter(1, absl::ZeroDuration());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Allow());
}

}  // namespace
}  // namespace tandem::log
