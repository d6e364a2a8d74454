#ifndef TANDEM_COMMON_STREAM_LOOP_H_
#define TANDEM_COMMON_STREAM_LOOP_H_

#include <atomic>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/stream_backoff.h"

namespace tandem {

// Owns the thread that keeps one long-lived stream open (SDS, mesh policy): it runs
// `run_one_stream` again and again through RunStreamWithBackoff until Stop(). Stop()
// cancels the stream in flight through the cancel hook the stream attached, so it is
// prompt even while a stream blocks on a read. The hook is a callback (the gRPC users
// pass `context.TryCancel()`), so this class names no gRPC type.
//
// Threading: Start and Stop from the owning thread (main); Attach from the loop's
// thread, inside `run_one_stream`; stopping() from any thread.
class StreamLoop {
 public:
  // While alive, makes a cancel hook the way Stop() ends the current stream; detaches it
  // when it dies. Declare it after what the hook touches (the ClientContext), so it
  // detaches before that dies.
  class Attachment {
   public:
    ~Attachment();
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;

    // False once the loop is stopping: the caller must not open its stream.
    bool attached() const { return loop_ != nullptr; }

   private:
    friend class StreamLoop;
    explicit Attachment(StreamLoop* loop) : loop_(loop) {}
    StreamLoop* loop_;  // null when not attached
  };

  StreamLoop() = default;
  // Stops the loop.
  ~StreamLoop();
  StreamLoop(const StreamLoop&) = delete;
  StreamLoop& operator=(const StreamLoop&) = delete;

  // Main thread, at most once: starts the thread. `run_one_stream` runs one stream until
  // it ends and returns true if it received anything (which resets the backoff); `cap`,
  // if set, shortens each wait between streams (RunStreamWithBackoff). Does nothing
  // after Stop().
  void Start(std::function<bool()> run_one_stream, BackoffCap cap = nullptr);
  // Main thread: stops the loop, cancels the stream in flight and joins the thread.
  // Safe before Start and more than once.
  void Stop();

  // Loop thread: attaches `cancel` unless the loop is stopping. The stopping flag is read
  // under the lock that Stop() takes to call the hook, so a Stop() racing a new stream
  // either finds the hook or is seen here; no stream is left uncancelled.
  [[nodiscard]] Attachment Attach(std::function<void()> cancel);

  // Any thread.
  bool stopping() const { return stopping_.load(); }

 private:
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // main thread only
};

}  // namespace tandem

#endif  // TANDEM_COMMON_STREAM_LOOP_H_
