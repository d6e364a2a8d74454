#ifndef TANDEM_PROXY_EVENT_LOOP_H_
#define TANDEM_PROXY_EVENT_LOOP_H_

#include <sys/epoll.h>

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::proxy {

// Receives readiness events for the one file descriptor it was registered with.
class EventHandler {
 public:
  virtual ~EventHandler() = default;
  // Loop thread. `events` is a mask of EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP.
  virtual void OnEvents(uint32_t events) = 0;
};

// A level-triggered epoll reactor owned by one thread. Every method runs on that loop
// thread except Post() and Stop(), which any thread may call (they wake the loop with
// an eventfd). A handler stays registered until Remove(); handlers must outlive their
// registration and, because one epoll_wait batch may hold several events of one
// object, must not be freed until RunOnce() returns (see DeferDelete).
//
// The loop thread is the thread that calls RunOnce(), from its first call until a call
// returns false (stopped). Before that (setup) and after it (teardown, once the runner
// is joined) the loop has no thread and its owner may use it from any one thread.
// Loop-thread methods assert their thread, in every build (docs/proxy.md, "Threading").
class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  bool ok() const { return epoll_fd_ >= 0 && wake_fd_ >= 0; }
  // Loop thread.
  bool Add(int fd, uint32_t events, EventHandler* handler);
  bool Modify(int fd, uint32_t events, EventHandler* handler);
  void Remove(int fd);

  // Any thread: runs `task` on the loop thread soon.
  void Post(std::function<void()> task);
  // Any thread: makes RunOnce() return false after the current iteration.
  void Stop();

  // Any thread: time since boot at the kernel's tick (a few ms), for per-event
  // bookkeeping like idle timers and the loop's tick; a tenth of absl::Now()'s cost
  // (CLOCK_MONOTONIC_COARSE, vDSO).
  static absl::Duration CoarseNow();

  // Loop thread (the first call makes its caller the loop thread): waits up to
  // `timeout` and dispatches events and posted tasks. Returns false once stopped, and
  // then the loop has no thread any more.
  bool RunOnce(absl::Duration timeout);
  // Loop thread: frees `deleter`'s object after the current batch of events and after
  // every task posted before this call has run (so a task may capture an object that
  // was alive when it was posted and check whether it has been closed).
  void DeferDelete(std::function<void()> deleter) {
    AssertInLoopThread("EventLoop::DeferDelete");
    graveyard_.push_back(std::move(deleter));
  }

  // Any thread: aborts with a message naming `caller` unless the calling thread is the
  // loop thread or the loop has none (see the class comment). A thread id compare, kept
  // in release builds: a worker-owned object touched from another thread is a data race
  // that corrupts memory far from its cause, and the check (~4 ns) is noise next to
  // the system calls of every event (docs/proxy.md, "Threading").
  void AssertInLoopThread(const char* caller) const {
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    if (owner != std::thread::id() && owner != std::this_thread::get_id()) {
      DieOffLoopThread(caller);
    }
  }

 private:
  [[noreturn]] void DieOffLoopThread(const char* caller) const;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopped_{false};
  // The loop thread; std::thread::id() while there is none. Only the loop thread sets
  // and clears it, so relaxed loads see the truth on that thread; another thread may
  // see it late, which can only miss a violation, never invent one.
  std::atomic<std::thread::id> owner_{std::thread::id()};
  absl::Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);
  // Set by Post() with the lock held: RunOnce() takes the lock only when it is set,
  // not on every turn.
  std::atomic<bool> has_posted_{false};
  std::vector<std::function<void()>> graveyard_;  // loop thread only
  std::vector<epoll_event> events_ = std::vector<epoll_event>(256);
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_EVENT_LOOP_H_
