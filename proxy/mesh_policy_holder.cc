#include "proxy/mesh_policy_holder.h"

#include <utility>

namespace tandem::proxy {

MeshPolicyHolder::MeshPolicyHolder(std::shared_ptr<const MeshPolicy> initial)
    : current_(std::move(initial)) {}

std::shared_ptr<const MeshPolicy> MeshPolicyHolder::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void MeshPolicyHolder::Publish(std::shared_ptr<const MeshPolicy> policy) {
  absl::MutexLock lock(&mu_);
  current_ = std::move(policy);
}

}  // namespace tandem::proxy
