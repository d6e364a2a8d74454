#ifndef TANDEM_TESTS_INTEGRATION_RECORDING_SECRET_SINK_H_
#define TANDEM_TESTS_INTEGRATION_RECORDING_SECRET_SINK_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/secret_sink.h"

namespace tandem::testing {

// Records what the proxy's TLS code would install (stands in for it behind the SDS
// client, or behind the agent's SDS server); can be told to refuse. Any thread.
class RecordingSecretSink : public SecretSink {
 public:
  absl::Status UpdateSecret(const WorkloadSecretPem& secret) override {
    absl::MutexLock lock(&mu_);
    if (refuse_) return absl::InvalidArgumentError("refused by test");
    secrets_.push_back(secret);
    return absl::OkStatus();
  }
  int count() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(secrets_.size());
  }
  WorkloadSecretPem last() {
    absl::MutexLock lock(&mu_);
    return secrets_.back();
  }
  void set_refuse(bool refuse) {
    absl::MutexLock lock(&mu_);
    refuse_ = refuse;
  }

 private:
  absl::Mutex mu_;
  std::vector<WorkloadSecretPem> secrets_ ABSL_GUARDED_BY(mu_);
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_RECORDING_SECRET_SINK_H_
