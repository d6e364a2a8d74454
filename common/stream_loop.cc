#include "common/stream_loop.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "common/stream_backoff.h"

namespace tandem {

StreamLoop::Attachment::~Attachment() {
  if (loop_ == nullptr) return;
  absl::MutexLock lock(&loop_->mu_);
  loop_->cancel_ = nullptr;
}

StreamLoop::~StreamLoop() { Stop(); }

void StreamLoop::Start(std::function<bool()> run_one_stream, BackoffCap cap) {
  if (thread_.joinable()) {
    // Two loops would race for one hook: a caller bug.
    std::fputs("tandem::StreamLoop CHECK failed: Start called twice\n", stderr);
    std::abort();
  }
  if (stopping_.load()) return;
  thread_ = std::thread([this, run = std::move(run_one_stream), cap = std::move(cap)] {
    RunStreamWithBackoff(stopping_, run, absl::Seconds(5), cap);
  });
}

void StreamLoop::Stop() {
  if (stopping_.exchange(true)) return;
  {
    absl::MutexLock lock(&mu_);
    if (cancel_) cancel_();
  }
  if (thread_.joinable()) thread_.join();
}

StreamLoop::Attachment StreamLoop::Attach(std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  if (stopping_.load()) return Attachment(nullptr);
  cancel_ = std::move(cancel);
  return Attachment(this);
}

}  // namespace tandem
