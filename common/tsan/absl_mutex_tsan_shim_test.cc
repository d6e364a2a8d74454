// Proves the TSan shim neither hides real races nor reports absl::Mutex-guarded ones.
// Meaningful only in TSan builds (registered only there).
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace {

void GuardedCounting() {
  absl::Mutex mu;
  int counter = 0;
  auto work = [&] {
    for (int i = 0; i < 1000; ++i) {
      absl::MutexLock lock(&mu);
      ++counter;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* c) { return *c == 2000; }, &counter));
}

// Abseil evaluates a waiter's condition in the thread that unlocks: that thread must see
// the waiter's condition (and the shim's wrapper around it) as ordered before it. Covers
// Await, the LockWhen family and Notification, which waits with LockWhen.
void ConditionsEvaluatedByTheUnlockingThread() {
  absl::Mutex mu;
  bool ready = false;
  absl::Notification notification;
  std::thread awaiting([&] {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30));
  });
  std::thread locking_when([&] {
    mu.LockWhenWithTimeout(absl::Condition(&ready), absl::Seconds(30));
    mu.Unlock();
  });
  std::thread notified(
      [&] { notification.WaitForNotificationWithTimeout(absl::Seconds(30)); });
  // Gives the waiters time to queue, so that the unlock below evaluates their
  // conditions; no wait-for-condition can see a thread queue inside Abseil.
  absl::SleepFor(absl::Milliseconds(100));
  {
    absl::MutexLock lock(&mu);
    ready = true;
  }
  notification.Notify();
  awaiting.join();
  locking_when.join();
  notified.join();
}

void RacyCounting() {
  absl::Mutex mu;
  int counter = 0;
  auto locked = [&] {
    absl::MutexLock lock(&mu);
    ++counter;
  };
  auto unlocked = [&] { ++counter; };  // the bug TSan must still see
  std::thread a(locked), b(unlocked);
  a.join();
  b.join();
}

TEST(AbslMutexTsanShimTest, GuardedAccessIsNotReported) {
  EXPECT_EXIT(
      {
        GuardedCounting();
        std::exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST(AbslMutexTsanShimTest, ConditionsEvaluatedAcrossThreadsAreNotReported) {
  EXPECT_EXIT(
      {
        ConditionsEvaluatedByTheUnlockingThread();
        std::exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST(AbslMutexTsanShimTest, UnguardedAccessIsStillReported) {
  EXPECT_EXIT(
      {
        RacyCounting();
        std::exit(0);
      },
      testing::ExitedWithCode(66), "data race");
}

}  // namespace
