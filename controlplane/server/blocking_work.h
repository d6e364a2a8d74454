#ifndef TANDEM_CONTROLPLANE_SERVER_BLOCKING_WORK_H_
#define TANDEM_CONTROLPLANE_SERVER_BLOCKING_WORK_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tandem::controlplane {

// Threads for the parts of gRPC calls that wait on the network. In Kubernetes mode
// every token costs a TokenReview round trip to the API server (up to its timeout),
// which must not hold one of the two threads gRPC 1.51 runs every callback of the
// process on: CreateCertificate and the policy streams' authentication run here.
// Any thread may Run; the destructor runs what is queued, then joins its threads.
class BlockingWork {
 public:
  explicit BlockingWork(int threads);
  ~BlockingWork();
  void Run(std::function<void()> work);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_BLOCKING_WORK_H_
