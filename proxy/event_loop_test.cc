#include "proxy/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "absl/synchronization/notification.h"
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

// Runs `loop` on a thread of its own, the loop thread, until destroyed: then it stops
// the loop, which hands it back to the test's thread.
class LoopThread {
 public:
  explicit LoopThread(EventLoop& loop)
      : loop_(loop), thread_([this] {
          while (loop_.RunOnce(absl::Seconds(10))) {
          }
        }) {
    absl::Notification running;
    loop_.Post([&running] { running.Notify(); });
    running.WaitForNotification();
  }
  ~LoopThread() {
    loop_.Stop();
    thread_.join();
  }

 private:
  EventLoop& loop_;
  std::thread thread_;
};

class NoopHandler : public EventHandler {
 public:
  void OnEvents(uint32_t) override {}
};

// The death tests re-run the test binary ("threadsafe" style): forking a process that
// has threads is unsafe, and TSan refuses it.
class EventLoopDeathTest : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(EventLoopDeathTest, AbortsWhenAnotherThreadDefersADelete) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  LoopThread runner(loop);
  EXPECT_DEATH(loop.DeferDelete([] {}),
               "EventLoop CHECK failed: EventLoop::DeferDelete called off the loop thread");
}

TEST_F(EventLoopDeathTest, AbortsWhenAnotherThreadRegistersASocket) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  LoopThread runner(loop);
  int fd = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  NoopHandler handler;
  EXPECT_DEATH(loop.Add(fd, EPOLLIN, &handler),
               "EventLoop::Add called off the loop thread");
  close(fd);
}

TEST_F(EventLoopDeathTest, AbortsWhenASecondThreadRunsTheLoop) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  LoopThread runner(loop);
  EXPECT_DEATH(loop.RunOnce(absl::ZeroDuration()),
               "EventLoop::RunOnce called off the loop thread");
}

// Workers register their listeners on the main thread before their thread starts, and
// close them there after joining it: a loop with no thread, or one whose thread has
// stopped it, belongs to whoever holds it.
TEST(EventLoopTest, BelongsToItsOwnerBeforeItRunsAndAfterItStops) {
  EventLoop loop;
  ASSERT_TRUE(loop.ok());
  int fd = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  NoopHandler handler;
  ASSERT_TRUE(loop.Add(fd, EPOLLIN, &handler));  // no loop thread yet
  std::thread runner([&loop] {
    ASSERT_TRUE(loop.RunOnce(absl::ZeroDuration()));
    loop.Stop();
    EXPECT_FALSE(loop.RunOnce(absl::ZeroDuration()));
  });
  runner.join();
  loop.Remove(fd);  // the runner stopped the loop and handed it back
  loop.DeferDelete([] {});
  close(fd);
}

}  // namespace
}  // namespace tandem::proxy
