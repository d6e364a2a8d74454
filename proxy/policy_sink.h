#ifndef TANDEM_PROXY_POLICY_SINK_H_
#define TANDEM_PROXY_POLICY_SINK_H_

#include <string>

#include "absl/status/status.h"

namespace tandem::policy::v1 {
class WorkloadPolicy;
}  // namespace tandem::policy::v1

namespace tandem::proxy {

// Where the policy client delivers each mesh policy the control plane pushes: the
// proxy, or a fake in tests. Names no gRPC or BoringSSL type, so the gRPC client and
// the TLS data plane meet here without including each other.
class PolicySink {
 public:
  virtual ~PolicySink() = default;
  // Any thread. Validates and applies `policy`, named `version`. An error says why it
  // cannot be applied; the policy in force then stays.
  virtual absl::Status ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                                   const std::string& version) = 0;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_POLICY_SINK_H_
