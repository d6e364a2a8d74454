#ifndef TANDEM_PROXY_SDS_CLIENT_H_
#define TANDEM_PROXY_SDS_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/retry_cap.h"
#include "common/secret_sink.h"

namespace tandem::proxy {

// How the SDS client redials its agent once a stream has ended.
struct SdsReconnectOptions {
  // Returns the notAfter of the certificate in force (InfinitePast(): none); read
  // before each wait. Empty: waits are not capped.
  std::function<absl::Time()> certificate_not_after;
  // Each wait (100 ms doubling to 5 s) is shortened for that certificate by the rule
  // the agent's renewals follow: a quarter of what it has left, floor 50 ms, so a
  // proxy whose agent was down redials before its certificate runs out, not 5 s later.
  // Once it has expired the proxy is out of service and a redial of a local socket
  // costs the agent nothing: 100-200 ms (a restarted agent's first certificate was
  // seen up to 2 s late when these waits doubled from the expiry, as the agent's do).
  RetryCap cap = {.fraction_of_remaining = 0.25,
                  .min_while_valid = absl::Milliseconds(50),
                  .min_after_expiry = absl::Milliseconds(100),
                  .max_after_expiry = absl::Milliseconds(200)};
};

// Receives the workload secret from the agent over Envoy's SDS protocol
// (envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets) on a Unix socket, and
// hands each complete secret (resources "default" + "ROOTCA") to a SecretSink. ACKs
// what the sink accepts; NACKs, with the sink's error, what it refuses (the previous
// secret stays in force). A lost stream is retried forever with capped exponential
// backoff (SdsReconnectOptions), so the proxy keeps serving while the agent is down and
// is re-fed when it returns. Owns one background thread; Start/Stop from the main
// thread.
//
// The header names no gRPC or BoringSSL type, so it can be included anywhere.
class SdsClient {
 public:
  static absl::StatusOr<std::unique_ptr<SdsClient>> Create(
      std::string socket_path, SecretSink* sink, SdsReconnectOptions reconnect = {});
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
