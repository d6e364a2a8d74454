#ifndef TANDEM_PROXY_CONNECTION_H_
#define TANDEM_PROXY_CONNECTION_H_

#include <openssl/base.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/log/rate_limiter.h"
#include "proxy/byte_buffer.h"
#include "proxy/config.h"
#include "proxy/event_loop.h"
#include "proxy/mesh_policy.h"
#include "proxy/mesh_policy_holder.h"
#include "proxy/peer_metrics.h"
#include "proxy/proxy_stats.h"
#include "proxy/tls_context_manager.h"

namespace tandem::proxy {

class Connection;

// What every connection of one worker shares. Owned by the Worker.
struct WorkerContext {
  EventLoop* loop;
  WorkerStats* stats;
  PeerCache* peers;  // istio_tcp_* cells by peer label set
  const ProxyOptions* options;
  TlsContextManager* tls;
  MeshPolicyHolder* policy;
  std::atomic<int>* global_connections;
  std::atomic<uint64_t>* next_id;
  // Bounds refusal log lines per worker (a hostile peer must not flood the logs).
  log::RateLimiter* log_limiter;  // refusal lines a peer can trigger
  // Called once when a connection closes; the worker frees it after the loop turn.
  std::function<void(Connection*)> on_closed;
};

// One proxied TCP connection: the downstream socket it was accepted on and the upstream
// socket it opened, one of them wrapped in TLS when the traffic is meshed.
//
// Outbound: app (plaintext) → [connect original destination] → TLS client → peer proxy.
// Inbound:  peer → [sniff: TLS or plaintext] → TLS server (or plaintext if PERMISSIVE)
//           → [connect the app] → app.
// Threading: owned by one worker; every method runs on that worker's loop thread.
// States: sniffing → connecting → handshaking → pumping → closed (steps skipped where
// they do not apply). Refusals close the connection and count a reason.
class Connection {
 public:
  Connection(WorkerContext ctx, Direction direction, int downstream_fd,
             SocketAddress destination);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Closes the connection when a deadline passed; returns true when it is closed.
  bool CheckTimeouts(absl::Time now);
  // Closes the connection when `policy` revokes its verified peer and asks to close
  // open connections; returns true when it did.
  bool CloseIfRevoked(const MeshPolicy& policy, absl::Time now);
  bool closed() const { return state_ == State::kClosed; }
  uint64_t id() const { return id_; }

 private:
  enum class State { kSniffing, kConnecting, kHandshaking, kPumping, kClosed };

  // One socket of the pair, optionally with TLS.
  struct Endpoint : public EventHandler {
    Connection* owner = nullptr;
    int fd = -1;
    bssl::UniquePtr<SSL> ssl;
    bool read_eof = false;      // FIN or close_notify received
    bool write_closed = false;  // FIN or close_notify sent
    bool want_read = false;     // TLS needs readable to make progress
    bool want_write = false;    // a write (or TLS) is blocked on writable
    bool reset = false;         // saw ECONNRESET: propagate as RST
    bool drained = false;       // read all it had (EAGAIN, short read): wait for EPOLLIN
    uint32_t registered = 0;
    bool added = false;  // registered with the loop at all
    void OnEvents(uint32_t events) override { owner->OnEvents(this, events); }
  };

  void OnEvents(Endpoint* endpoint, uint32_t events);
  void Sniff();
  void ConnectUpstream(const SocketAddress& target);
  void OnConnected(uint32_t events);
  void StartHandshake();
  void ContinueHandshake();
  void StartPumping();
  void Pump();
  // Return true when bytes moved (or EOF was seen). Set *failed on a hard error.
  bool ReadInto(Endpoint& from, ByteBuffer& buffer, bool* failed);
  bool WriteFrom(ByteBuffer& buffer, Endpoint& to, bool* failed);
  // True once every byte of `buffer` has left for `to`'s socket, TLS records included.
  static bool Delivered(const ByteBuffer& buffer, const Endpoint& to);
  void ShutdownWrite(Endpoint& endpoint);
  void UpdateInterest(Endpoint& endpoint, const ByteBuffer& inbound,
                      const ByteBuffer& outbound);
  // Registers or updates `endpoint`'s epoll interest.
  void SetInterest(Endpoint& endpoint, uint32_t events);
  void Refuse(FailReason reason, const std::string& detail);
  // Resolves this connection's istio_tcp_* cell (once, at handshake or connect).
  PeerCell* ResolvePeerCell(ResponseFlags flags);
  // Counts a failed upstream connect: connect_failures, and istio_tcp_* with "UF".
  void CountConnectFailure();
  void WriteAccessLog() const;
  void Close();
  Endpoint& tls_endpoint() {
    return direction_ == Direction::kOutbound ? upstream_ : downstream_;
  }

  WorkerContext ctx_;
  const Direction direction_;
  const uint64_t id_;
  SocketAddress destination_;  // outbound: original destination; inbound: our local addr
  State state_ = State::kSniffing;
  Mode mode_ = Mode::kMtls;
  bool counted_open_ = false;
  Endpoint downstream_;
  Endpoint upstream_;
  ByteBuffer down_to_up_;
  ByteBuffer up_to_down_;
  std::shared_ptr<TlsSnapshot> snapshot_;  // the TLS generation this connection uses
  // The mesh policy in force when this connection was accepted; it keeps it for life.
  std::shared_ptr<const MeshPolicy> policy_;
  std::string peer_identity_;
  std::string peer_serial_;
  PeerCell* peer_cell_ = nullptr;  // set when pumping starts; lives in ctx_.peers
  std::string close_reason_ = "closed";
  uint64_t bytes_from_down_ = 0;
  uint64_t bytes_from_up_ = 0;
  absl::Time started_;
  absl::Time handshake_started_;
  absl::Time deadline_ = absl::InfiniteFuture();
  // EventLoop::CoarseNow() at the last event: set on every event, read by the idle
  // timeout only.
  absl::Duration last_activity_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_CONNECTION_H_
