#ifndef TANDEM_PROXY_SDS_CLIENT_H_
#define TANDEM_PROXY_SDS_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/secret_sink.h"

namespace tandem::proxy {

// Receives the workload secret from the agent over Envoy's SDS protocol
// (envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets) on a Unix socket, and
// hands each complete secret (resources "default" + "ROOTCA") to a SecretSink. ACKs
// what the sink accepts; NACKs, with the sink's error, what it refuses (the previous
// secret stays in force). A lost stream is retried forever with capped exponential
// backoff, so the proxy keeps serving while the agent is down and is re-fed when it
// returns. Owns one background thread; Start/Stop from the main thread.
//
// The header names no gRPC or BoringSSL type, so it can be included anywhere.
class SdsClient {
 public:
  static absl::StatusOr<std::unique_ptr<SdsClient>> Create(std::string socket_path,
                                                           SecretSink* sink);
  ~SdsClient();

  void Start();
  void Stop();
  // Any thread: Prometheus text for SDS updates and stream state.
  std::string RenderMetrics() const;

  struct Impl;

 private:
  explicit SdsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SDS_CLIENT_H_
