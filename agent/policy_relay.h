#ifndef TANDEM_AGENT_POLICY_RELAY_H_
#define TANDEM_AGENT_POLICY_RELAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/ca_client.h"

namespace grpc {
class Service;
}  // namespace grpc
namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::agent {

class CaChannel;

struct PolicyRelayOptions {
  // Where tandem-ca is and the roots that verify it: the agent's CA settings.
  CaClientOptions ca;
  // The connection to the CA to use: main.cc passes the CaClient's (CaClient::
  // channel()), so the agent holds one connection to the CA, not two. Null: one of
  // its own, from `ca`.
  std::shared_ptr<CaChannel> channel;
  // Called on the upstream thread when an upstream stream receives its first response,
  // or ends with an answer from the CA (ReachedCa: e.g. UNIMPLEMENTED from a CA without
  // MeshPolicyService): the CA is reachable. main.cc tells the renewal loop
  // (Agent::CaReachable). Empty: nobody is told.
  std::function<void()> on_ca_reached;
  // The workload's service-account token, sent as `authorization: Bearer`; re-read for
  // every upstream stream (kubelet rotates it).
  std::string token_file;
  // Free text for the control plane's logs (pod name) when no proxy named one.
  std::string node = "tandem-agent";
  // Where the relay's metrics live; null means metrics::Registry::Default().
  metrics::Registry* registry = nullptr;
};

// Relays the workload's mesh policy (tandem.policy.v1.MeshPolicyService/StreamPolicy)
// from tandem-ca to the proxy. One upstream stream to the CA, authenticated like a
// certificate request, stays open (re-opened with backoff when the CA goes away); its
// latest response is cached and sent to every proxy stream, including one that
// (re)connects while the CA is down. The proxy's ACKs and NACKs of the current
// response go upstream; a new upstream stream names the version last ACKed.
//
// Every upstream stream also says who is at this end (tandem.policy.v1.Node, as xDS
// does): the pod name, the agent's version and its certificate in the metadata, the
// connected proxy's name and version; a node-only request updates it when one of those
// changes. tandem-ca shows it per stream (`tandemctl proxy-status`).
//
// The proxy reaches it on the agent's SO_PEERCRED-checked socket: register service()
// with SdsServerOptions::extra_services. Threading: one upstream thread; gRPC runs each
// proxy stream on its thread plus a reader thread. Create/Start/Stop from the main
// thread; the accessors from any thread. The header names no gRPC type but the opaque
// grpc::Service.
class PolicyRelay {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyRelay>> Create(PolicyRelayOptions options);
  ~PolicyRelay();

  void Start();
  void Stop();
  grpc::Service* service();

  // Any thread: the certificate the agent has just delivered to its proxy, reported
  // upstream (now, or on the next upstream stream).
  void SetCertificate(const std::string& serial_hex, absl::Time not_after);

  // Any thread; for tests.
  bool upstream_up() const;
  uint64_t responses_relayed() const;
  uint64_t nacks() const;

  struct Impl;

 private:
  explicit PolicyRelay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_POLICY_RELAY_H_
