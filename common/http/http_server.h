#ifndef TANDEM_COMMON_HTTP_HTTP_SERVER_H_
#define TANDEM_COMMON_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::metrics {
class Counter;
class Registry;
}  // namespace tandem::metrics

namespace tandem::http {

struct HttpRequest {
  std::string method;  // "GET" or "POST"
  std::string path;    // without the query, e.g. "/metrics"
  std::string query;   // after '?', undecoded; empty if none
  std::string body;    // Content-Length bytes (POST); at most Options::max_body_bytes
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

// A serving certificate for HTTPS, as PEM strings so that files including gRPC headers
// never see a BoringSSL type (docs/building.md, "BoringSSL beside gRPC").
struct TlsCredentials {
  std::string cert_chain_pem;  // leaf first, then intermediates
  std::string key_pem;
};

// A minimal HTTP/1.1 server for /metrics, health and admin endpoints and the sidecar
// injector's admission webhook; not for data traffic. One request per connection (the
// reply says Connection: close). Plaintext, or HTTPS when Options::tls is set: TLS 1.3
// only, ALPN http/1.1, the certificate swappable at run time (SetTlsCredentials).
//
// Threading: one background thread runs a poll(2) loop over the listener and up to
// Options::max_connections non-blocking connections, and calls the handlers, so a
// handler must be quick and must not call Stop(). A handler whose answer takes time
// (e.g. an app health probe bounded by seconds) registers with HandleDeferred() and
// answers later, from any thread, through its Responder: the loop keeps serving other
// connections meanwhile. Handle() and HandleDeferred() may be called from any thread
// at any time; Create/Start/Stop/destructor from the owning thread; port() from any
// thread.
//
// Hostile clients: each connection must deliver its whole request within
// Options::read_timeout, the TLS handshake included; a failed handshake (e.g. plaintext
// to an HTTPS port) closes the connection; headers are capped (431), bodies are capped
// (413), anything unparsable gets 400, unsupported methods 405, chunked bodies 501,
// unknown paths 404. Idle and slow clients cannot lock others out: the loop accepts
// eagerly, and when all Options::max_connections slots are taken (or the process is out
// of descriptors) it closes the oldest connection that has not delivered a complete
// request yet (counted as refused, reason "shed"), else the oldest one lingering after
// its response, to make room for the new one. A connection whose request is being
// answered (deferred or writing) is never shed; only when every slot holds one do new
// connections wait in the kernel backlog.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Delivers a deferred handler's response. Callable from any thread, also after the
  // server is stopped or destroyed (the response is then dropped); only its first call
  // counts. Copyable: every copy answers the same request.
  using Responder = std::function<void(HttpResponse)>;
  using DeferredHandler = std::function<void(const HttpRequest&, Responder)>;

  struct Options {
    // Where to listen. Admin endpoints keep the loopback default; the caller passes
    // "0.0.0.0" or "::" to expose /metrics to the pod network. IPv4 or IPv6 literal.
    std::string address = "127.0.0.1";
    uint16_t port = 0;  // 0 picks a free port; see port()
    size_t max_header_bytes = 8 * 1024;
    size_t max_body_bytes = 64 * 1024;
    // Open connections at most. Idle ones are shed for new ones (see the class
    // comment), so this bounds memory and descriptors (some 12 KiB and one descriptor
    // each), not how many clients are served.
    size_t max_connections = 1024;
    absl::Duration read_timeout = absl::Seconds(2);   // whole request, from accept
    absl::Duration write_timeout = absl::Seconds(5);  // whole response
    // How long a deferred handler may take to call its Responder; then the client gets
    // 504 and a later response is dropped. A bound on the slot, not a normal path: the
    // deferred handler is expected to answer within its own deadline first.
    absl::Duration deferred_timeout = absl::Seconds(30);
    // When set, counts requests by code and refusals by reason (the registry must
    // outlive the server), labelled server=`name`:
    //   tandem_http_requests_total{server,code}
    //   tandem_http_refused_total{server,reason}  (reason: malformed, header_too_large,
    //     body_too_large, timeout, method, unsupported, tls_handshake, shed)
    //   tandem_http_tls_credentials_total{server,result}  (HTTPS only; result:
    //     accepted, bad_certificate, bad_key, key_mismatch, expired)
    metrics::Registry* registry = nullptr;
    std::string name = "http";
    // Serve HTTPS with these credentials (refused by Create like SetTlsCredentials
    // refuses them). Unset: plaintext.
    std::optional<TlsCredentials> tls;
  };

  // Binds and listens (so port() is known) but serves nothing until Start().
  // InvalidArgument for an unparsable address or refused TLS credentials; the errno's
  // status (e.g. Unavailable, PermissionDenied) when bind/listen fail.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(Options options);
  ~HttpServer();  // Stop()s

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes an exact path (no query) to `handler`, replacing any earlier one. Any thread.
  void Handle(std::string path, Handler handler);
  // Routes an exact path to a handler that answers through its Responder, now or later
  // (see the class comment); replaces any earlier handler of the path. Any thread.
  void HandleDeferred(std::string path, DeferredHandler handler);

  // Starts the serving thread. FailedPrecondition if already started or stopped.
  absl::Status Start();
  // Returns the bound port. Any thread.
  uint16_t port() const { return port_; }
  // Replaces the HTTPS certificate: builds and checks a new TLS context (the chain
  // parses, the key parses and matches the leaf, the leaf has not expired), then
  // publishes it with one pointer swap. Connections accepted afterwards use it; open
  // ones keep theirs. InvalidArgument names what is wrong, and the old certificate
  // stays in force; FailedPrecondition on a plaintext server. Any thread.
  absl::Status SetTlsCredentials(const TlsCredentials& credentials);
  // Stops serving, closes open connections and joins the thread. Idempotent.
  void Stop();

 private:
  struct Connection;
  struct Stats;
  struct TlsContext;  // a built SSL_CTX (BoringSSL stays in the .cc)
  struct Mailbox;
  struct Route {
    Handler handler;
    DeferredHandler deferred;  // set instead of `handler` for HandleDeferred()
  };

  HttpServer(Options options, int listen_fd, int wake_fd, uint16_t port, bool tls);
  void Run();
  // Return false when the connection is done and must be closed.
  bool OnHandshake(Connection& conn);
  // Whether a connection may be closed to make room: it has no complete request yet
  // (handshaking, reading) or has been answered (lingering).
  static bool Sheddable(const Connection& conn);
  // The connection to shed first: the oldest without a complete request, else the
  // oldest lingering; end() if none.
  static std::vector<std::unique_ptr<Connection>>::iterator FindSheddable(
      std::vector<std::unique_ptr<Connection>>& conns);
  // Closes FindSheddable's connection; false if there is none.
  bool Shed(std::vector<std::unique_ptr<Connection>>& conns);
  bool OnReadable(Connection& conn);
  bool OnWritable(Connection& conn);
  // Plaintext or TLS reads and writes: bytes moved (> 0), 0 at the end of the stream,
  // kWouldBlock (the connection's poll events are set) or kFailed.
  static constexpr long kWouldBlock = -1;
  static constexpr long kFailed = -2;
  long ReadSome(Connection& conn, char* buf, size_t len);
  long WriteSome(Connection& conn, const char* data, size_t len);
  // The same for an SSL_read (`reading`) or SSL_write result `n`, setting conn.want
  // when it waits.
  static long TlsResult(Connection& conn, int n, bool reading);
  void Respond(Connection& conn, const HttpResponse& response);
  void Refuse(Connection& conn, int status, const char* reason);
  void Dispatch(Connection& conn, HttpRequest request);
  // Sends the deferred responses that arrived, to the connections still waiting.
  void DeliverDeferred(std::vector<std::unique_ptr<Connection>>& conns);

  const Options options_;
  const int listen_fd_;
  const int wake_fd_;  // eventfd: Stop() and Responders wake the loop
  const uint16_t port_;
  const bool tls_enabled_;
  std::unique_ptr<Stats> stats_;  // null without a registry
  std::thread thread_;
  bool started_ = false;  // owning thread only
  std::atomic<bool> stopping_{false};
  uint64_t next_connection_id_ = 1;  // serving thread only
  // Shared with every Responder, which may outlive the server.
  const std::shared_ptr<Mailbox> mailbox_;

  absl::Mutex mu_;
  std::map<std::string, Route, std::less<>> handlers_ ABSL_GUARDED_BY(mu_);
  // HTTPS only: the context new connections use; the lock is held to copy or swap.
  mutable absl::Mutex tls_mu_;
  std::shared_ptr<const TlsContext> tls_ ABSL_GUARDED_BY(tls_mu_);
};

// Sets options->address and options->port from "host:port" or "[v6]:port", the form
// every tandem flag and config field uses. InvalidArgument names what is wrong.
absl::Status SetListenAddress(const std::string& host_port, HttpServer::Options* options);

// True when `address` (as in Options::address) is a loopback address (127/8, ::1):
// admin endpoints refuse anything else.
bool IsLoopbackAddress(const std::string& address);

}  // namespace tandem::http

#endif  // TANDEM_COMMON_HTTP_HTTP_SERVER_H_
