#include "common/stream_loop.h"

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

// Bounds every wait, so a broken loop fails a test instead of hanging it.
constexpr absl::Duration kPatience = absl::Seconds(30);

// Waits up to kPatience for `condition` (under `mu`).
bool AwaitUpTo(absl::Mutex& mu, const bool& condition) {
  absl::MutexLock lock(&mu);
  return mu.AwaitWithTimeout(absl::Condition(&condition), kPatience);
}

// Loop thread: waits up to kPatience for Stop() to begin. Polls: the loop offers
// stopping() only as a flag.
void WaitUntilStopping(const StreamLoop& loop) {
  for (absl::Time end = absl::Now() + kPatience; !loop.stopping() && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
}

TEST(StreamLoopTest, StopCancelsAStreamBlockedUntilCancelled) {
  StreamLoop loop;
  absl::Mutex mu;
  bool cancelled = false;
  absl::Notification opened;
  std::atomic<bool> ended_by_cancel{false};
  loop.Start([&] {
    StreamLoop::Attachment attachment = loop.Attach([&] {
      absl::MutexLock lock(&mu);
      cancelled = true;
    });
    if (!attachment.attached()) return false;
    opened.Notify();
    ended_by_cancel.store(AwaitUpTo(mu, cancelled));  // a stream that never ends itself
    return true;
  });
  ASSERT_TRUE(opened.WaitForNotificationWithTimeout(kPatience));
  loop.Stop();
  EXPECT_TRUE(ended_by_cancel.load());
  EXPECT_TRUE(loop.stopping());
}

TEST(StreamLoopTest, ReopensEndedStreamsUntilStopped) {
  StreamLoop loop;
  absl::Mutex mu;
  int streams = 0;
  bool three_opened = false;
  loop.Start([&] {
    absl::MutexLock lock(&mu);
    three_opened = ++streams >= 3;
    return true;  // received something: retried after the shortest backoff
  });
  EXPECT_TRUE(AwaitUpTo(mu, three_opened));
  loop.Stop();
}

TEST(StreamLoopTest, RefusesToAttachOnceStopping) {
  StreamLoop loop;
  absl::Notification entered;
  std::atomic<bool> attached{true};
  loop.Start([&] {
    entered.Notify();
    // Stop() has no hook to call yet: the stream must learn of it when it attaches.
    WaitUntilStopping(loop);
    attached.store(loop.Attach([] {}).attached());
    return false;
  });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kPatience));
  loop.Stop();
  EXPECT_FALSE(attached.load());
}

TEST(StreamLoopTest, StopNeverCallsAHookThatWasDetached) {
  StreamLoop loop;
  absl::Notification detached;
  std::atomic<int> cancels{0};
  loop.Start([&] {
    {
      StreamLoop::Attachment attachment = loop.Attach([&] { cancels.fetch_add(1); });
      EXPECT_TRUE(attachment.attached());
    }
    detached.Notify();
    WaitUntilStopping(loop);
    return false;
  });
  ASSERT_TRUE(detached.WaitForNotificationWithTimeout(kPatience));
  loop.Stop();
  EXPECT_EQ(cancels.load(), 0);
}

TEST(StreamLoopTest, StopBeforeStartRunsNoStream) {
  StreamLoop loop;
  loop.Stop();
  std::atomic<int> streams{0};
  loop.Start([&] {
    streams.fetch_add(1);
    return false;
  });
  loop.Stop();
  EXPECT_EQ(streams.load(), 0);
}

TEST(StreamLoopTest, StopTwiceAndDestroyAfterStopAreHarmless) {
  absl::Notification opened;
  {
    StreamLoop loop;
    loop.Start([&] {
      if (!opened.HasBeenNotified()) opened.Notify();
      return false;
    });
    ASSERT_TRUE(opened.WaitForNotificationWithTimeout(kPatience));
    loop.Stop();
    loop.Stop();
  }                          // the destructor stops it a third time
  StreamLoop never_started;  // and one that never ran is destroyed cleanly
}

}  // namespace
}  // namespace tandem
