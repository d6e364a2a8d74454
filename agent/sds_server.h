#ifndef TANDEM_AGENT_SDS_SERVER_H_
#define TANDEM_AGENT_SDS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret_sink.h"

namespace grpc {
class Service;
}  // namespace grpc
namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::agent {

struct SdsServerOptions {
  // The socket is created owner-only (0600) in a directory created 0700.
  std::string socket_path = "/var/run/tandem/sds.sock";
  // Peers allowed by SO_PEERCRED uid, besides our own uid (the proxy's, 1337 in pods).
  std::vector<uid_t> allowed_uids = {1337};
  // Where the SDS metrics live; null means metrics::Registry::Default(). Must outlive
  // the server.
  metrics::Registry* registry = nullptr;
  // More gRPC services served on the same checked socket (the mesh policy relay). Not
  // owned; must outlive the server.
  std::vector<grpc::Service*> extra_services;
  // A connection is handed to gRPC only once its first bytes (the HTTP/2 client
  // preface, which a gRPC client sends at once) have arrived. Until then it is closed
  // after `first_bytes_timeout`, and when `max_silent_connections` are waiting, the
  // oldest one is closed for a new one: a local process that opens connections and
  // never speaks holds that many descriptors at most, and none of gRPC's memory.
  absl::Duration first_bytes_timeout = absl::Seconds(5);
  size_t max_silent_connections = 64;
};

// Serves the workload secret to the proxy with Envoy's SDS protocol
// (SecretDiscoveryService/StreamSecrets, state of the world; resources "default" and
// "ROOTCA", each sent only to streams that asked for it, both when a stream names
// none), so a real Envoy could be fed too. Connections are accepted here, checked with
// SO_PEERCRED, and only handed to gRPC once they speak (see SdsServerOptions). Each
// UpdateSecret() pushes to every open stream; ACKs and NACKs are counted, and a NACK's
// error_detail is logged.
//
// Threading: one acceptor thread; gRPC runs each stream on one of its threads, plus a
// reader thread per stream for ACKs. Create/Start/Stop/destructor from the main thread;
// UpdateSecret and the accessors from any thread.
class SdsServer : public SecretSink {
 public:
  static absl::StatusOr<std::unique_ptr<SdsServer>> Create(SdsServerOptions options);
  ~SdsServer() override;

  absl::Status Start();
  void Stop();
  // Any thread. Stores the secret and pushes it to every open stream; always OK (the
  // proxy's verdict arrives later as an ACK or NACK).
  absl::Status UpdateSecret(const WorkloadSecretPem& secret) override;
  // Any thread; for tests and readiness.
  uint64_t acks() const;
  uint64_t nacks() const;
  uint64_t refused_peers() const;
  int open_streams() const;

  struct Impl;

 private:
  explicit SdsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_SDS_SERVER_H_
