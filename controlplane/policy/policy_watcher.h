#ifndef TANDEM_CONTROLPLANE_POLICY_POLICY_WATCHER_H_
#define TANDEM_CONTROLPLANE_POLICY_POLICY_WATCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/policy/policy_file.h"

namespace tandem::controlplane {

// Keeps the mesh policy in force: Poll() re-reads it and, when its content changed,
// validates it and only then swaps it in. A bad or unreadable policy is refused (logged
// once per distinct content, counted) and the last good policy stays. The text comes
// from a file (standalone) or from any reader, e.g. the copy of a ConfigMap a watch
// keeps (in a cluster).
//
// Threading: Poll() from one thread at a time (the policy server's poll thread);
// current() and the counters from any thread.
class PolicyWatcher {
 public:
  // Loads `path`; a missing or bad file is an error (the CA must not start on it).
  static absl::StatusOr<std::unique_ptr<PolicyWatcher>> Create(std::string path);
  // The same over `read`, which returns the policy's text; `name` names it in errors.
  // `read` is called from Create's and Poll()'s thread.
  using Reader = std::function<absl::StatusOr<std::string>()>;
  static absl::StatusOr<std::unique_ptr<PolicyWatcher>> Create(std::string name,
                                                               Reader read);

  // Re-reads the file; returns true when a new valid policy was swapped in.
  bool Poll();

  // Returns the policy in force. Any thread.
  std::shared_ptr<const PolicyFile> current() const;
  uint64_t loads_accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t loads_refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  PolicyWatcher(std::string path, Reader read, std::string text, PolicyFile policy);

  const std::string path_;
  const Reader read_;
  // Poll() thread only: the last content seen, good or bad; nullopt while unreadable.
  std::optional<std::string> last_text_;
  std::atomic<uint64_t> accepted_{1};  // the load at start
  std::atomic<uint64_t> refused_{0};
  mutable absl::Mutex mu_;
  std::shared_ptr<const PolicyFile> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_POLICY_POLICY_WATCHER_H_
