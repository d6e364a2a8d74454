#ifndef TANDEM_PROXY_POLICY_CLIENT_H_
#define TANDEM_PROXY_POLICY_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proxy/policy_sink.h"

namespace tandem::proxy {

// Receives the workload's mesh policy from the agent over
// tandem.policy.v1.MeshPolicyService/StreamPolicy on the agent's Unix socket (the SDS
// socket), hands each version to a PolicySink and answers it: an ACK names the version
// applied; a NACK names the last good version (still in force) and says in
// error_detail why the new one was refused. A lost stream is retried forever with
// capped exponential backoff, so the proxy keeps its policy while the agent is down.
// The first request of every stream names the version in force.
//
// Owns one background thread; Start/Stop from the main thread. The header names no
// gRPC or BoringSSL type.
class PolicyClient {
 public:
  // `node` is free text for the control plane's logs (pod name).
  static absl::StatusOr<std::unique_ptr<PolicyClient>> Create(std::string socket_path,
                                                              std::string node,
                                                              PolicySink* sink);
  ~PolicyClient();

  void Start();
  void Stop();
  // Any thread: Prometheus text for the policy stream's state.
  std::string RenderMetrics() const;

  struct Impl;

 private:
  explicit PolicyClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_POLICY_CLIENT_H_
