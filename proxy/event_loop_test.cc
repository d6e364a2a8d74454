#include "proxy/event_loop.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

// A connection posts a continuation of itself from one task and is closed (deferred
// delete) by a later task of the same turn: the continuation runs next turn and must
// find the object alive (seen as a use-after-free under ASan in proxy_test).
TEST(EventLoopTest, FreesADeferredObjectOnlyAfterTheTasksPostedBeforeIt) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  bool freed = false;
  bool continuation_ran = false, continuation_saw_it_alive = false;
  loop.Post([&] {
    loop.Post([&] {
      continuation_ran = true;
      continuation_saw_it_alive = !freed;
    });
  });
  loop.Post([&] { loop.DeferDelete([&] { freed = true; }); });
  ASSERT_TRUE(loop.RunOnce(absl::ZeroDuration()));
  EXPECT_FALSE(freed) << "a task posted before the delete has not run yet";
  ASSERT_TRUE(loop.RunOnce(absl::ZeroDuration()));
  EXPECT_TRUE(continuation_ran);
  EXPECT_TRUE(continuation_saw_it_alive);
  EXPECT_TRUE(freed);
}

// Deferred from an event handler (or between turns), an object is freed at the end of
// the turn, after the tasks already posted.
TEST(EventLoopTest, FreesAnObjectDeferredBeforeTheTasksAtTheEndOfTheTurn) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  bool freed = false, task_saw_it_alive = false;
  loop.Post([&] { task_saw_it_alive = !freed; });
  loop.DeferDelete([&] { freed = true; });
  ASSERT_TRUE(loop.RunOnce(absl::Seconds(10)));  // must not sleep: a task is pending
  EXPECT_TRUE(task_saw_it_alive);
  EXPECT_TRUE(freed);
}

}  // namespace
}  // namespace tandem::proxy
