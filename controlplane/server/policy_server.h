#ifndef TANDEM_CONTROLPLANE_SERVER_POLICY_SERVER_H_
#define TANDEM_CONTROLPLANE_SERVER_POLICY_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "controlplane/policy/policy_watcher.h"
#include "controlplane/revocation/revocation_store.h"
#include "controlplane/server/blocking_work.h"
#include "controlplane/server/caller_authenticator.h"
#include "tandem/mesh_policy.pb.h"

namespace grpc {
class Service;
}  // namespace grpc

namespace tandem::controlplane {

struct PolicyServerOptions {
  std::string trust_domain = "cluster.local";  // names callers in logs and Streams()
  PolicyWatcher* policy = nullptr;             // null: every workload gets the defaults
  RevocationStore* revocations = nullptr;      // null: no revocations
  // How often the policy file is re-read and expired revocations are dropped; also
  // the longest a policy change waits before it is pushed (a revocation is pushed at
  // once).
  absl::Duration poll_interval = absl::Seconds(1);
  // Where a stream's authentication runs when it waits on the network (TokenReview);
  // null: on gRPC's thread, as a JWT check does not wait.
  BlockingWork* blocking = nullptr;
};

// Returns the version of `policy`: StableVersion of its deterministic serialization.
std::string PolicyVersion(const tandem::policy::v1::WorkloadPolicy& policy);

// tandem.policy.v1.MeshPolicyService/StreamPolicy, served on tandem-ca's gRPC server.
// Each stream is authenticated like CreateCertificate and gets the WorkloadPolicy of
// its caller's identity plus every live revocation, once the first request arrives and
// again whenever that changes; it is never sent the same version twice in a row.
// Requests with a nonce are ACKs (or NACKs when error_detail is set) of the response
// with that nonce; answers to older nonces are ignored.
//
// Threading: gRPC's callback API, so a stream holds no thread (10,000 streams in one
// process: bench/ca_load.sh); its reactions run on gRPC's threads. A poll thread
// (Start/Stop) re-reads the policy file, expires revocations, and on a change resolves
// the policy once per service account and starts the writes; a revocation wakes it at
// once (RevocationStore::SetChangeListener). One mutex guards every stream's state.
// Start/Stop from the owning thread; Stop() ends every stream (UNAVAILABLE; one whose
// write is still in flight after 1 s is cancelled), waits until gRPC is done with
// them, and must come before the gRPC server's Shutdown. The other
// methods from any thread. gRPC code: the header names no BoringSSL type.
class PolicyServer {
 public:
  // `authenticator` and everything in `options` outlive the server.
  PolicyServer(PolicyServerOptions options, const CallerAuthenticator* authenticator);
  ~PolicyServer();  // Stop()s

  // The service to register on the gRPC server.
  grpc::Service* service();
  void Start();
  void Stop();

  // One open stream: who (authenticated identity, self-reported node), what it was
  // sent and how it answered. The node's fields are the client's word (Node in
  // mesh_policy.proto), each cut to kMaxNodeFieldBytes; an unreadable certificate
  // expiry is left unknown.
  struct StreamInfo {
    std::string node;  // Node.id, else the first request's `node`
    std::string spiffe_id;
    std::string sent_version;
    std::string acked_version;
    std::string nacked_version;  // the version the last NACK refused
    std::string last_nack_error;
    std::string proxy_name;  // Node.user_agent_name: empty while no proxy is connected
    std::string proxy_version;
    std::string agent_version;
    std::string cert_serial;
    absl::Time cert_not_after = absl::InfinitePast();  // InfinitePast: not reported
    absl::Time connected_since;
  };
  static constexpr size_t kMaxNodeFieldBytes = 256;
  // A NACK's error_detail is kept up to this many bytes.
  static constexpr size_t kMaxNackErrorBytes = 4096;
  // Returns the open streams, for the admin endpoint and tests. Any thread.
  std::vector<StreamInfo> Streams() const;
  // Returns Streams() as {"streams":[{"node":..,"spiffe_id":..,"sent_version":..,
  // "acked_version":..,"nacked_version":..,"last_nack_error":..,"proxy_name":..,
  // "proxy_version":..,"agent_version":..,"cert_serial":..,"cert_not_after":..,
  // "connected_since":..}]} (times RFC 3339 UTC, "" when unknown). Any thread.
  std::string StreamsJson() const;
  // Prometheus text: policy version, loads, streams, responses, ACKs/NACKs, stream
  // refusals, revocations in force. Any thread.
  std::string RenderMetrics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVER_POLICY_SERVER_H_
