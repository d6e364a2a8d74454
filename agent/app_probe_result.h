#ifndef TANDEM_AGENT_APP_PROBE_RESULT_H_
#define TANDEM_AGENT_APP_PROBE_RESULT_H_

#include <string>
#include <string_view>

namespace tandem::agent {

// How one app probe ended; the `result` label of tandem_agent_app_probe_total.
enum class AppProbeOutcome {
  kSuccess,
  kTimeout,       // timeoutSeconds passed (connect, TLS, request, answer or RPC)
  kRefused,       // nothing listens on the port (ECONNREFUSED)
  kConnectError,  // another connect failure
  kHttpStatus,    // an HTTP answer outside 200..399
  kBadResponse,   // no parsable HTTP status line before the connection closed
  kTls,           // the HTTPS handshake or TLS I/O failed
  kNotServing,    // grpc.health.v1 answered, but not SERVING
  kGrpcError,     // the Health/Check RPC failed (e.g. UNIMPLEMENTED, UNAVAILABLE)
  kStopping,      // the agent stopped before the probe ran
};

constexpr std::string_view AppProbeOutcomeName(AppProbeOutcome outcome) {
  switch (outcome) {
    case AppProbeOutcome::kSuccess:
      return "success";
    case AppProbeOutcome::kTimeout:
      return "timeout";
    case AppProbeOutcome::kRefused:
      return "refused";
    case AppProbeOutcome::kConnectError:
      return "connect_error";
    case AppProbeOutcome::kHttpStatus:
      return "http_status";
    case AppProbeOutcome::kBadResponse:
      return "bad_response";
    case AppProbeOutcome::kTls:
      return "tls";
    case AppProbeOutcome::kNotServing:
      return "not_serving";
    case AppProbeOutcome::kGrpcError:
      return "grpc_error";
    case AppProbeOutcome::kStopping:
      return "stopping";
  }
  return "unknown";
}

struct AppProbeResult {
  AppProbeOutcome outcome = AppProbeOutcome::kSuccess;
  std::string detail;  // for the kubelet's event and the log, e.g. "HTTP 500"
  bool ok() const { return outcome == AppProbeOutcome::kSuccess; }
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_APP_PROBE_RESULT_H_
