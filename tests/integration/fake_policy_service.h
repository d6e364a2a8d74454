#ifndef TANDEM_TESTS_INTEGRATION_FAKE_POLICY_SERVICE_H_
#define TANDEM_TESTS_INTEGRATION_FAKE_POLICY_SERVICE_H_

// gRPC code: no <openssl/...> here.
#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/synchronization/mutex.h"
#include "proxy/policy_sink.h"
#include "tandem/mesh_policy.grpc.pb.h"
#include "tests/integration/scripted_stream.h"

namespace tandem::testing {

// A MeshPolicyService the test scripts (see ScriptedStream): stands in for the agent
// (policy client tests) or for tandem-ca (relay tests). Threading: as ScriptedStream.
class FakePolicyService final
    : public ScriptedStream<policy::v1::MeshPolicyService::Service,
                            policy::v1::PolicyRequest, policy::v1::PolicyResponse> {
 public:
  grpc::Status StreamPolicy(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<policy::v1::PolicyResponse, policy::v1::PolicyRequest>*
          stream) override {
    return Serve(context, stream);
  }
};

// Stands in for the proxy: keeps the version it last accepted, and refuses any policy
// that allows kBad, as a real proxy refuses what it cannot apply. Any thread.
class RecordingPolicySink : public proxy::PolicySink {
 public:
  static constexpr char kBad[] = "spiffe://cluster.local/ns/bad/sa/bad";
  absl::Status ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                           const std::string& version) override;
  std::string version();
  int applied();

 private:
  absl::Mutex mu_;
  std::string version_ ABSL_GUARDED_BY(mu_);
  int applied_ ABSL_GUARDED_BY(mu_) = 0;
};

// Returns a response with `version`, `nonce` and a policy whose one rule allows only
// `allowed_identity` on port 8080 (any identity when empty).
policy::v1::PolicyResponse PolicyResponseFor(const std::string& version,
                                             const std::string& nonce,
                                             const std::string& allowed_identity = "");

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_FAKE_POLICY_SERVICE_H_
