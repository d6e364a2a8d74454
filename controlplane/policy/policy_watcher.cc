#include "controlplane/policy/policy_watcher.h"

#include <cstdio>

#include "common/file_util.h"
#include "common/log/log.h"

namespace tandem::controlplane {

absl::StatusOr<std::unique_ptr<PolicyWatcher>> PolicyWatcher::Create(std::string path) {
  Reader read = [path] { return ReadFileToString(path); };
  return Create(std::move(path), std::move(read));
}

absl::StatusOr<std::unique_ptr<PolicyWatcher>> PolicyWatcher::Create(std::string name,
                                                                     Reader read) {
  absl::StatusOr<std::string> text = read();
  if (!text.ok()) return text.status();
  absl::StatusOr<PolicyFile> policy = PolicyFile::Parse(*text, name);
  if (!policy.ok()) return policy.status();
  return std::unique_ptr<PolicyWatcher>(new PolicyWatcher(
      std::move(name), std::move(read), *std::move(text), *std::move(policy)));
}

PolicyWatcher::PolicyWatcher(std::string path, Reader read, std::string text,
                             PolicyFile policy)
    : path_(std::move(path)),
      read_(std::move(read)),
      last_text_(std::move(text)),
      current_(std::make_shared<const PolicyFile>(std::move(policy))) {}

bool PolicyWatcher::Poll() {
  // The whole file is compared, not its mtime: it is small, and an edit within the
  // mtime's granularity or one that keeps the size is still seen.
  absl::StatusOr<std::string> text = read_();
  if (!text.ok()) {
    if (last_text_.has_value()) {  // log and count once, until it comes back
      refused_.fetch_add(1, std::memory_order_relaxed);
      log::Error("ca", "policy file refused, keeping the last good one",
                 {{"error", std::string(text.status().message())}});
      last_text_.reset();
    }
    return false;
  }
  if (*text == last_text_) return false;
  last_text_ = *text;
  absl::StatusOr<PolicyFile> policy = PolicyFile::Parse(*text, path_);
  if (!policy.ok()) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    log::Error("ca", "policy file refused, keeping the last good one",
               {{"error", std::string(policy.status().message())}});
    return false;
  }
  auto next = std::make_shared<const PolicyFile>(*std::move(policy));
  std::string version = next->version();
  {
    absl::MutexLock lock(&mu_);
    if (current_->version() == version) return false;  // back to the policy in force
    current_ = std::move(next);
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  log::Info("ca", "policy file accepted", {{"file", path_}, {"version", version}});
  return true;
}

std::shared_ptr<const PolicyFile> PolicyWatcher::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace tandem::controlplane
