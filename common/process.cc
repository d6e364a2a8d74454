#include "common/process.h"

#include <sys/resource.h>

#include <csignal>

#include "absl/synchronization/mutex.h"

namespace tandem {

void PrepareProcess() {
  std::signal(SIGPIPE, SIG_IGN);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);  // best effort: the old limit still works
  }
}

}  // namespace tandem
