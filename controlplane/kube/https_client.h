#ifndef TANDEM_CONTROLPLANE_KUBE_HTTPS_CLIENT_H_
#define TANDEM_CONTROLPLANE_KUBE_HTTPS_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tandem::controlplane {

struct HttpsResponse {
  int status = 0;
  std::string body;
};

// A small blocking HTTP/1.1 client over TLS (BoringSSL) for short JSON requests to the
// Kubernetes API server: one connection per request (Connection: close), the server
// verified against `ca_pem` and its name (DNS or IP SAN), TLS 1.2+, every request
// bounded by `timeout` as a whole and the response by `max_response_bytes`.
// Immutable after Create; any thread may call Post/Send (each call has its own
// connection).
// The process must ignore SIGPIPE (tandem-ca's main does): a server that closes early
// would otherwise kill it on write.
// The header names no BoringSSL type, so gRPC code may include it.
class HttpsClient {
 public:
  struct Options {
    std::string address;      // "host:port"; IPv6 as "[::1]:443"
    std::string ca_pem;       // roots that verify the server
    std::string server_name;  // name to check in the server cert; default: the host
    absl::Duration timeout = absl::Seconds(5);
    size_t max_response_bytes = 1 << 20;
  };
  static absl::StatusOr<std::unique_ptr<HttpsClient>> Create(Options options);
  ~HttpsClient();

  // POSTs `body`. Transport, TLS and protocol failures are kUnavailable (or
  // kDeadlineExceeded); any HTTP status is returned as a response.
  absl::StatusOr<HttpsResponse> Post(
      const std::string& path, const std::string& content_type, const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers) const;
  // Like Post, with any method ("GET", "PUT", ...); a GET sends no body and no
  // Content-Type.
  absl::StatusOr<HttpsResponse> Send(
      const std::string& method, const std::string& path, const std::string& content_type,
      const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers) const;

  // What Stream does with a response that stays open (a Kubernetes watch).
  struct StreamHandlers {
    // Gets the HTTP status once the headers are in; false: stop here.
    std::function<bool(int status)> on_head;
    // Gets the body as it arrives, chunked coding removed; false: stop here.
    std::function<bool(absl::string_view bytes)> on_body;
    // Checked every 100 ms: true ends the stream (Stream returns OK).
    const std::atomic<bool>* cancelled = nullptr;
    // No byte for this long ends the stream with kDeadlineExceeded.
    absl::Duration idle_timeout = absl::Minutes(2);
  };
  // GETs `path` and hands the response to `handlers` as it arrives: connecting,
  // the handshake and sending are bounded by the timeout, the body only by
  // idle_timeout. OK when the body ends, a handler returns false or `cancelled` turns
  // true; kUnavailable for transport, TLS and framing failures (a connection closed
  // inside a chunked body among them). Any thread (each call has its own connection).
  absl::Status Stream(const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const StreamHandlers& handlers) const;

  struct Tls;
  struct Connection;

 private:
  HttpsClient(Options options, std::string host, std::string port,
              std::unique_ptr<Tls> tls);
  // Connects, verifies the server and sends the request, all before `deadline`.
  absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& method, const std::string& path, const std::string& content_type,
      const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers,
      absl::Time deadline) const;
  Options options_;
  std::string host_;
  std::string port_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_HTTPS_CLIENT_H_
