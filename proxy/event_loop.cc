#include "proxy/event_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace tandem::proxy {

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ >= 0 && wake_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake fd
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
}

EventLoop::~EventLoop() {
  AssertInLoopThread("EventLoop::~EventLoop");
  for (auto& deleter : graveyard_) deleter();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool EventLoop::Add(int fd, uint32_t events, EventHandler* handler) {
  AssertInLoopThread("EventLoop::Add");
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::Modify(int fd, uint32_t events, EventHandler* handler) {
  AssertInLoopThread("EventLoop::Modify");
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::Remove(int fd) {
  AssertInLoopThread("EventLoop::Remove");
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::Post(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    posted_.push_back(std::move(task));
    has_posted_.store(true);
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

absl::Duration EventLoop::CoarseNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return absl::DurationFromTimespec(ts);
}

void EventLoop::Stop() {
  stopped_.store(true);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void EventLoop::DieOffLoopThread(const char* caller) const {
  std::ostringstream line;
  line << "tandem::proxy::EventLoop CHECK failed: " << caller
       << " called off the loop thread (called on thread " << std::this_thread::get_id()
       << ", the loop runs on thread " << owner_.load() << ")\n";
  std::string text = line.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::abort();
}

bool EventLoop::RunOnce(absl::Duration timeout) {
  // The first call binds the loop to its thread; two threads running one loop is a bug.
  std::thread::id self = std::this_thread::get_id();
  std::thread::id owner = std::thread::id();
  if (!owner_.compare_exchange_strong(owner, self, std::memory_order_relaxed) &&
      owner != self) {
    DieOffLoopThread("EventLoop::RunOnce");
  }
  if (stopped_.load()) {
    // Stopped for good: whoever joins this thread owns the loop from now on.
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    return false;
  }
  // Objects waiting to be freed (see below) hold sockets: do not sleep on them.
  int wait_ms =
      graveyard_.empty() ? static_cast<int>(absl::ToInt64Milliseconds(timeout)) : 0;
  int n = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), wait_ms);
  for (int i = 0; i < n; ++i) {
    auto* handler = static_cast<EventHandler*>(events_[i].data.ptr);
    if (handler == nullptr) {
      uint64_t value;
      (void)!read(wake_fd_, &value, sizeof(value));
      continue;
    }
    handler->OnEvents(events_[i].events);
  }
  std::vector<std::function<void()>> tasks;
  // A task posted after this exchange sets the flag again and runs next turn; the
  // lock orders the tasks' contents.
  if (has_posted_.exchange(false)) {
    absl::MutexLock lock(&mu_);
    tasks.swap(posted_);
  }
  // Objects deferred until now are freed after these tasks, the last that can name
  // them. One deferred while these run may be named by a task posted meanwhile (which
  // runs next turn), so it waits for the next turn's tasks.
  std::vector<std::function<void()>> graves;
  graves.swap(graveyard_);
  for (auto& task : tasks) task();
  for (auto& deleter : graves) deleter();
  if (stopped_.load()) {
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace tandem::proxy
