// Proves the TSan shim neither hides real races nor reports absl::Mutex-guarded ones.
// Meaningful only in TSan builds (registered only there).
#include <thread>

#include "absl/synchronization/mutex.h"
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

TEST(AbslMutexTsanShimTest, UnguardedAccessIsStillReported) {
  EXPECT_EXIT(
      {
        RacyCounting();
        std::exit(0);
      },
      testing::ExitedWithCode(66), "data race");
}

}  // namespace
