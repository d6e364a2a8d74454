#include "common/process.h"

#include <csignal>

#include "absl/synchronization/mutex.h"

namespace tandem {

void PrepareProcess() {
  std::signal(SIGPIPE, SIG_IGN);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace tandem
