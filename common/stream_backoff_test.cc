#include "common/stream_backoff.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(StreamBackoffTest,
     DoublesFromAHundredMillisecondsToTheCapWithJitterBetweenHalfAndAll) {
  struct Step {
    double random01;
    absl::Duration want;
  };
  // Backoff before each step: 100 ms, 200, 400, 800, 1.6 s, 2 s (capped), 2 s.
  const Step steps[] = {
      {0.0, absl::Milliseconds(50)},   {1.0, absl::Milliseconds(200)},
      {0.5, absl::Milliseconds(300)},  {0.0, absl::Milliseconds(400)},
      {1.0, absl::Milliseconds(1600)}, {1.0, absl::Seconds(2)},
      {7.0, absl::Seconds(2)},  // out of range: clamped to 1
  };
  StreamBackoff backoff(absl::Seconds(2));
  for (const Step& step : steps) {
    EXPECT_EQ(backoff.Next(step.random01), step.want) << step.random01;
  }
}

TEST(StreamBackoffTest, ResetStartsAgainFromAHundredMilliseconds) {
  StreamBackoff backoff;
  for (int i = 0; i < 10; ++i) backoff.Next(1.0);
  EXPECT_EQ(backoff.Next(1.0), absl::Seconds(5));
  backoff.Reset();
  EXPECT_EQ(backoff.Next(1.0), absl::Milliseconds(100));
}

}  // namespace
}  // namespace tandem
