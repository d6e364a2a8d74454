#include "tests/integration/fake_policy_service.h"

namespace tandem::testing {

absl::Status RecordingPolicySink::ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                                              const std::string& version) {
  absl::MutexLock lock(&mu_);
  for (const config::InboundPort& port : policy.inbound_ports()) {
    for (const std::string& id : port.allowed_identities()) {
      if (id == kBad) return absl::InvalidArgumentError("cannot apply " + id);
    }
  }
  version_ = version;
  ++applied_;
  return absl::OkStatus();
}

std::string RecordingPolicySink::version() {
  absl::MutexLock lock(&mu_);
  return version_;
}

int RecordingPolicySink::applied() {
  absl::MutexLock lock(&mu_);
  return applied_;
}

policy::v1::PolicyResponse PolicyResponseFor(const std::string& version,
                                             const std::string& nonce,
                                             const std::string& allowed_identity) {
  policy::v1::PolicyResponse response;
  response.set_version_info(version);
  response.set_nonce(nonce);
  config::InboundPort* port = response.mutable_policy()->add_inbound_ports();
  port->set_port(8080);
  if (!allowed_identity.empty()) port->add_allowed_identities(allowed_identity);
  return response;
}

}  // namespace tandem::testing
