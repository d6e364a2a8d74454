#ifndef TANDEM_PROXY_MESH_POLICY_HOLDER_H_
#define TANDEM_PROXY_MESH_POLICY_HOLDER_H_

#include <memory>

#include "absl/synchronization/mutex.h"
#include "proxy/mesh_policy.h"

namespace tandem::proxy {

// Publishes the policy in force: readers copy a shared_ptr under a lock held only for
// the copy, a new policy replaces it in one swap. Thread-safe: any thread.
class MeshPolicyHolder {
 public:
  explicit MeshPolicyHolder(std::shared_ptr<const MeshPolicy> initial);

  std::shared_ptr<const MeshPolicy> Current() const;
  void Publish(std::shared_ptr<const MeshPolicy> policy);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const MeshPolicy> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_MESH_POLICY_HOLDER_H_
