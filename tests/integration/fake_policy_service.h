#ifndef TANDEM_TESTS_INTEGRATION_FAKE_POLICY_SERVICE_H_
#define TANDEM_TESTS_INTEGRATION_FAKE_POLICY_SERVICE_H_

// gRPC code: no <openssl/...> here.
#include <grpcpp/grpcpp.h>

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proxy/policy_sink.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace tandem::testing {

// A MeshPolicyService the test scripts: each open stream sends what Push() queues, in
// order, and every request and `authorization` header is recorded. Stands in for the
// agent (policy client tests) or for tandem-ca (relay tests). Threading: gRPC runs each
// stream on its thread plus one reader thread; the other methods from any thread.
class FakePolicyService final : public policy::v1::MeshPolicyService::Service {
 public:
  void Push(policy::v1::PolicyResponse response);
  std::vector<policy::v1::PolicyRequest> requests();
  // Waits up to `timeout` for a request answering `nonce` (an ACK or a NACK of it);
  // nullopt if none came.
  std::optional<policy::v1::PolicyRequest> AnswerTo(const std::string& nonce,
                                                    absl::Duration timeout);
  std::vector<std::string> authorizations();
  int streams();
  int open_streams();
  // Ends every stream and refuses new ones' pushes; call before Server::Shutdown.
  void Shutdown();

  grpc::Status StreamPolicy(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<policy::v1::PolicyResponse, policy::v1::PolicyRequest>*
          stream) override;

 private:
  absl::Mutex mu_;
  std::deque<policy::v1::PolicyResponse> outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<policy::v1::PolicyRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
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
