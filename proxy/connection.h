#ifndef TANDEM_PROXY_CONNECTION_H_
#define TANDEM_PROXY_CONNECTION_H_

#include <openssl/base.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "proxy/config.h"
#include "proxy/event_loop.h"
#include "proxy/mesh_policy.h"
#include "proxy/mesh_policy_holder.h"
#include "proxy/proxy_stats.h"
#include "proxy/tls_context_manager.h"

namespace tandem::proxy {

class Connection;

// A token bucket for log lines: at most `per_second` lines, the rest counted and
// reported as "N suppressed" with the next line that passes. One worker thread only.
class LogLimiter {
 public:
  explicit LogLimiter(int per_second) : per_second_(per_second), tokens_(per_second) {}
  // Returns true when a line may be written; *suppressed gets the lines dropped since
  // the last one that passed.
  bool Allow(absl::Time now, uint64_t* suppressed);

 private:
  const int per_second_;
  double tokens_;
  absl::Time last_ = absl::InfinitePast();
  uint64_t dropped_ = 0;
};

// What every connection of one worker shares. Owned by the Worker.
struct WorkerContext {
  EventLoop* loop;
  WorkerStats* stats;
  const ProxyOptions* options;
  TlsContextManager* tls;
  MeshPolicyHolder* policy;
  std::atomic<int>* global_connections;
  std::atomic<uint64_t>* next_id;
  // Bounds refusal log lines per worker (a hostile peer must not flood the logs).
  class LogLimiter* log_limiter;
  // Called once when a connection closes; the worker frees it after the loop turn.
  std::function<void(Connection*)> on_closed;
};

// A bounded byte buffer for one direction. The high-water mark is its capacity: a full
// buffer stops reading from the source until the sink drains it (backpressure).
class ByteBuffer {
 public:
  explicit ByteBuffer(size_t capacity) : data_(new char[capacity]), capacity_(capacity) {}
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  bool full() const { return begin_ == 0 && end_ == capacity_; }
  // Writable tail; compacts first so a drained buffer offers its whole capacity.
  char* tail(size_t* space);
  void Commit(size_t n) { end_ += n; }
  const char* head() const { return data_.get() + begin_; }
  void Consume(size_t n);

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
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
    uint32_t registered = 0;
    bool added = false;  // registered with the loop at all
    void OnEvents(uint32_t events) override { owner->OnEvents(this, events); }
  };

  void OnEvents(Endpoint* endpoint, uint32_t events);
  void Sniff();
  void ConnectUpstream(const SocketAddress& target);
  void OnConnected();
  void StartHandshake();
  void ContinueHandshake();
  void StartPumping();
  void Pump();
  // Returns true when bytes moved. Sets *failed on a hard error.
  bool ReadInto(Endpoint& from, ByteBuffer& buffer, bool* failed);
  bool WriteFrom(ByteBuffer& buffer, Endpoint& to, bool* failed);
  void ShutdownWrite(Endpoint& endpoint);
  void UpdateInterest(Endpoint& endpoint, const ByteBuffer& inbound,
                      const ByteBuffer& outbound);
  // Registers or updates `endpoint`'s epoll interest.
  void SetInterest(Endpoint& endpoint, uint32_t events);
  void Refuse(FailReason reason, const std::string& detail);
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
  std::string close_reason_ = "closed";
  uint64_t bytes_from_down_ = 0;
  uint64_t bytes_from_up_ = 0;
  absl::Time started_;
  absl::Time handshake_started_;
  absl::Time deadline_ = absl::InfiniteFuture();
  absl::Time last_activity_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_CONNECTION_H_
