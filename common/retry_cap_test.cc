#include "common/retry_cap.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(RetryCapTest, Table) {
  const RetryCap cap;  // a quarter of what is left (floor 50 ms); after expiry 200 ms
  struct Case {
    const char* name;
    absl::Duration backoff;
    absl::Time not_after, now;
    absl::Duration expected;
  } cases[] = {
      {"no certificate: the backoff", absl::Seconds(30), absl::InfinitePast(), kT0,
       absl::Seconds(30)},
      {"an hour left: the backoff, well under the cap", absl::Seconds(5),
       kT0 + absl::Hours(1), kT0, absl::Seconds(5)},
      {"2 s left: 5 s cut to a quarter, 0.5 s", absl::Seconds(5), kT0 + absl::Seconds(2),
       kT0, absl::Milliseconds(500)},
      {"2 s left: 0.2 s is under the cap", absl::Milliseconds(200),
       kT0 + absl::Seconds(2), kT0, absl::Milliseconds(200)},
      {"0.1 s left: the floor", absl::Seconds(5), kT0 + absl::Milliseconds(100), kT0,
       absl::Milliseconds(50)},
      {"0.1 s left, backoff under the floor: the backoff", absl::Milliseconds(10),
       kT0 + absl::Milliseconds(100), kT0, absl::Milliseconds(10)},
      {"expiring now: counts as expired, the floor", absl::Seconds(5), kT0, kT0,
       absl::Milliseconds(200)},
      {"expired 10 ms ago: the floor after expiry", absl::Seconds(30), kT0,
       kT0 + absl::Milliseconds(10), absl::Milliseconds(200)},
      {"expired 1 s ago: 1.6 s cut to 1 s", absl::Milliseconds(1600), kT0,
       kT0 + absl::Seconds(1), absl::Seconds(1)},
      {"expired an hour ago: the backoff", absl::Seconds(30), kT0, kT0 + absl::Hours(1),
       absl::Seconds(30)},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CapRetryBackoff(cap, c.backoff, c.not_after, c.now), c.expected) << c.name;
  }
}

TEST(RetryCapTest, HonoursConfiguredFractionAndFloors) {
  RetryCap cap;
  cap.fraction_of_remaining = 0.5;
  cap.min_while_valid = absl::Milliseconds(300);
  cap.min_after_expiry = absl::Milliseconds(100);
  cap.max_after_expiry = absl::Milliseconds(250);
  EXPECT_EQ(CapRetryBackoff(cap, absl::Seconds(5), kT0 + absl::Seconds(2), kT0),
            absl::Seconds(1));
  EXPECT_EQ(CapRetryBackoff(cap, absl::Seconds(5), kT0 + absl::Milliseconds(400), kT0),
            absl::Milliseconds(300));
  EXPECT_EQ(CapRetryBackoff(cap, absl::Seconds(5), kT0, kT0 + absl::Milliseconds(20)),
            absl::Milliseconds(100));
  // Expired 3 s ago: the time since the expiry (3 s) is above the ceiling.
  EXPECT_EQ(CapRetryBackoff(cap, absl::Seconds(5), kT0, kT0 + absl::Seconds(3)),
            absl::Milliseconds(250));
  // The ceiling applies only after the expiry.
  EXPECT_EQ(CapRetryBackoff(cap, absl::Seconds(5), kT0 + absl::Seconds(8), kT0),
            absl::Seconds(4));
}

}  // namespace
}  // namespace tandem
