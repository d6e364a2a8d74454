#include "proxy/connection.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "proxy/config.h"
#include "proxy/sniffer.h"
#include "proxy/socket_bio.h"

namespace tandem::proxy {
namespace {

// Largest chunk handed to SSL_write: one TLS record.
constexpr size_t kMaxTlsWrite = 16384;

FailReason FromVerifyFailure(pki::VerifyFailure failure) {
  switch (failure) {
    case pki::VerifyFailure::kMalformed:
      return FailReason::kMalformed;
    case pki::VerifyFailure::kUnknownCa:
      return FailReason::kUnknownCa;
    case pki::VerifyFailure::kExpired:
      return FailReason::kExpired;
    case pki::VerifyFailure::kNotYetValid:
      return FailReason::kNotYetValid;
    case pki::VerifyFailure::kBadIdentity:
      return FailReason::kBadIdentity;
    case pki::VerifyFailure::kNotAllowed:
      return FailReason::kNotAllowed;
    case pki::VerifyFailure::kNone:
      break;
  }
  return FailReason::kTlsError;
}

void SetResetOnClose(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

}  // namespace

Connection::Connection(WorkerContext ctx, Direction direction, int downstream_fd,
                       SocketAddress destination)
    : ctx_(ctx),
      direction_(direction),
      id_(ctx.next_id->fetch_add(1, std::memory_order_relaxed)),
      destination_(std::move(destination)),
      down_to_up_(ctx.options->buffer_bytes),
      up_to_down_(ctx.options->buffer_bytes),
      policy_(ctx.policy->Current()) {
  downstream_.owner = upstream_.owner = this;
  downstream_.fd = downstream_fd;
  started_ = absl::Now();
  last_activity_ = EventLoop::CoarseNow();
}

Connection::~Connection() {
  for (Endpoint* e : {&downstream_, &upstream_}) {
    if (e->fd < 0) continue;
    // Closing the fd alone leaves it in the epoll set while any other copy of the
    // socket lives: a fork in the same process (a test running openssl beside an
    // in-process proxy) holds one until its exec, and events then named this freed
    // object (istio_interop_test crashed about once in 40 runs).
    if (e->added) ctx_.loop->Remove(e->fd);
    close(e->fd);
  }
}

void Connection::Start() {
  ctx_.loop->AssertInLoopThread("Connection::Start");
  int one = 1;
  setsockopt(downstream_.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (direction_ == Direction::kInbound) {
    state_ = State::kSniffing;
    deadline_ = started_ + ctx_.options->handshake_timeout;
    SetInterest(downstream_, EPOLLIN);
    return;
  }
  mode_ = policy_->IsMeshed(destination_) ? Mode::kMtls : Mode::kPlaintext;
  if (mode_ == Mode::kMtls) {
    snapshot_ = ctx_.tls->Current();
    if (snapshot_ == nullptr) {
      Refuse(FailReason::kNoCertificate, "no valid certificate (none yet, or expired)");
      return;
    }
  }
  ConnectUpstream(destination_);
}

void Connection::OnEvents(Endpoint* endpoint, uint32_t events) {
  ctx_.loop->AssertInLoopThread("Connection::OnEvents");
  if (state_ == State::kClosed) return;  // a stale event from this batch
  last_activity_ = EventLoop::CoarseNow();
  // A drained socket is read again only once the loop reports it readable.
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    endpoint->drained = false;
    if (endpoint->ssl) MarkReadable(SSL_get_rbio(endpoint->ssl.get()));
  }
  switch (state_) {
    case State::kSniffing:
      Sniff();
      break;
    case State::kConnecting:
      if (endpoint == &upstream_) OnConnected(events);
      break;
    case State::kHandshaking:
      ContinueHandshake();
      break;
    case State::kPumping:
      Pump();
      break;
    case State::kClosed:
      break;
  }
}

void Connection::Sniff() {
  char first[kSniffBytes];
  ssize_t n = recv(downstream_.fd, first, sizeof(first), MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    Close();  // peer went away before saying anything
    return;
  }
  uint16_t port =
      ctx_.options->has_fixed_app ? ctx_.options->fixed_app.port() : destination_.port();
  InboundPortPolicy policy = policy_->InboundPolicy(port);
  if (SniffInboundProtocol(absl::string_view(first, n)) == InboundProtocol::kTls) {
    mode_ = Mode::kMtls;
    snapshot_ = ctx_.tls->Current();
    if (snapshot_ == nullptr) {
      Refuse(FailReason::kNoCertificate, "no valid certificate (none yet, or expired)");
      return;
    }
    StartHandshake();
    return;
  }
  if (policy.mode == InboundMode::kStrict) {
    Refuse(FailReason::kPlaintextRefused,
           absl::StrCat("plaintext to STRICT port ", port, " refused"));
    return;
  }
  mode_ = Mode::kPlaintext;
  SetInterest(downstream_, 0);
  ConnectUpstream(AppAddress(*ctx_.options, destination_));
}

void Connection::ConnectUpstream(const SocketAddress& target) {
  state_ = State::kConnecting;
  deadline_ = absl::Now() + ctx_.options->connect_timeout;
  upstream_.fd = socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (upstream_.fd < 0) {
    CountConnectFailure();
    Close();
    return;
  }
  if (ctx_.options->socket_mark != 0) {
    // Marks our own traffic so the pod's iptables rules do not capture it again. Needs
    // CAP_NET_ADMIN; without it the uid-1337 exclusion still applies.
    static std::atomic<bool> warned{false};
    uint32_t mark = ctx_.options->socket_mark;
    if (setsockopt(upstream_.fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0 &&
        !warned.exchange(true)) {
      log::Warn("proxy", "SO_MARK not permitted; relying on the uid exclusion",
                {{"error", std::strerror(errno)}});
    }
  }
  int one = 1;
  setsockopt(upstream_.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int rc = connect(upstream_.fd, target.get(), target.length);
  if (rc != 0 && errno != EINPROGRESS) {
    CountConnectFailure();
    SetResetOnClose(downstream_.fd);
    Close();
    return;
  }
  SetInterest(upstream_, EPOLLOUT);
}

void Connection::OnConnected(uint32_t events) {
  // A pending socket error always raises EPOLLERR: without it (or a hang-up) the
  // connect succeeded, and asking SO_ERROR would be a system call for nothing.
  int error = 0;
  if (events & (EPOLLERR | EPOLLHUP)) {
    socklen_t len = sizeof(error);
    getsockopt(upstream_.fd, SOL_SOCKET, SO_ERROR, &error, &len);
  }
  if (error != 0) {
    CountConnectFailure();
    // Tell the app the way a direct connection would have: with a reset.
    SetResetOnClose(downstream_.fd);
    Close();
    return;
  }
  if (direction_ == Direction::kOutbound && mode_ == Mode::kMtls) {
    StartHandshake();
    return;
  }
  // Nothing can have come from a socket connected this instant; if the app speaks
  // first, the loop reports it.
  upstream_.drained = true;
  StartPumping();
}

void Connection::StartHandshake() {
  state_ = State::kHandshaking;
  handshake_started_ = absl::Now();
  deadline_ = handshake_started_ + ctx_.options->handshake_timeout;
  Endpoint& tls = tls_endpoint();
  tls.ssl = direction_ == Direction::kOutbound
                ? TlsContextManager::NewClientSsl(snapshot_, destination_.text)
                : TlsContextManager::NewServerSsl(snapshot_);
  // A client's peer says nothing before our ClientHello: its first read would only
  // return EAGAIN, so it waits for the loop to report the ServerHello.
  BIO* bio = tls.ssl ? NewReadAheadSocketBio(tls.fd, /*wait_for_readable=*/direction_ ==
                                                         Direction::kOutbound)
                     : nullptr;
  if (bio == nullptr) {
    Refuse(FailReason::kTlsError, "SSL allocation failed");
    return;
  }
  SSL_set_bio(tls.ssl.get(), bio, bio);  // takes our one reference
  if (&tls == &downstream_) SetInterest(downstream_, EPOLLIN);
  ContinueHandshake();
}

void Connection::ContinueHandshake() {
  Endpoint& tls = tls_endpoint();
  int rc = SSL_do_handshake(tls.ssl.get());
  if (rc != 1) {
    int err = SSL_get_error(tls.ssl.get(), rc);
    uint32_t want = 0;
    if (err == SSL_ERROR_WANT_READ) want = EPOLLIN;
    if (err == SSL_ERROR_WANT_WRITE) want = EPOLLOUT;
    if (want != 0) {
      SetInterest(tls, want);
      return;
    }
    PeerVerification* v = TlsContextManager::GetVerification(tls.ssl.get());
    char reason[256];
    ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
    ERR_clear_error();
    if (v != nullptr && v->failure != pki::VerifyFailure::kNone) {
      Refuse(FromVerifyFailure(v->failure), v->error);
    } else {
      // The peer refused us, or spoke something other than TLS.
      Refuse(FailReason::kTlsError, reason);
    }
    return;
  }
  ctx_.stats->handshake_seconds[static_cast<int>(direction_)].Observe(
      absl::ToDoubleSeconds(absl::Now() - handshake_started_));
  if (SSL_session_reused(tls.ssl.get()))
    WorkerStats::Add(ctx_.stats->resumed_handshakes, 1);
  // Authorization runs after every handshake, resumed ones included.
  absl::StatusOr<Peer> peer = TlsContextManager::PeerOf(tls.ssl.get());
  if (!peer.ok()) {
    Refuse(FailReason::kBadIdentity, std::string(peer.status().message()));
    return;
  }
  peer_identity_ = peer->identity.ToString();
  peer_serial_ = std::move(peer->serial_hex);
  // Revocations are checked against the newest policy, not the one taken at accept: a
  // revocation must not wait for connections that were already handshaking.
  if (const RevocationEntry* revoked = ctx_.policy->Current()->FindRevocation(
          peer_serial_, peer_identity_, absl::Now())) {
    Refuse(FailReason::kRevoked, absl::StrCat(peer_identity_, " (serial ", peer_serial_,
                                              ") is revoked: ", revoked->reason));
    return;
  }
  if (direction_ == Direction::kOutbound) {
    std::string expected = policy_->ExpectedIdentity(destination_);
    if (!expected.empty() && expected != peer_identity_) {
      Refuse(FailReason::kWrongServer,
             absl::StrCat("server is ", peer_identity_, ", expected ", expected));
      return;
    }
    StartPumping();
    return;
  }
  uint16_t port =
      ctx_.options->has_fixed_app ? ctx_.options->fixed_app.port() : destination_.port();
  InboundPortPolicy policy = policy_->InboundPolicy(port);
  if (!IdentityAllowed(policy.allowed_identities, peer_identity_)) {
    Refuse(FailReason::kNotAuthorized,
           absl::StrCat(peer_identity_, " is not allowed on port ", port));
    return;
  }
  SetInterest(downstream_, 0);
  ConnectUpstream(AppAddress(*ctx_.options, destination_));
}

void Connection::StartPumping() {
  state_ = State::kPumping;
  deadline_ = absl::InfiniteFuture();
  counted_open_ = true;
  int d = static_cast<int>(direction_), m = static_cast<int>(mode_);
  WorkerStats::Add(ctx_.stats->opened[d][m], 1);
  WorkerStats::Add(ctx_.stats->active[d][m], 1);
  peer_cell_ = ResolvePeerCell(ResponseFlags::kNone);
  WorkerStats::Add(peer_cell_->opened, 1);
  SetInterest(downstream_, EPOLLIN);
  Pump();
}

bool Connection::ReadInto(Endpoint& from, ByteBuffer& buffer, bool* failed) {
  if (from.read_eof || from.drained || buffer.full()) return false;
  iovec spans[2];
  if (from.ssl) {
    // SSL_read returns at most one record: read on until the buffer is full or TLS
    // needs more bytes from the socket, so the sink gets one large write.
    bool moved = false;
    while (buffer.WritableSpans(spans) > 0) {
      int n = SSL_read(from.ssl.get(), spans[0].iov_base,
                       static_cast<int>(std::min<size_t>(spans[0].iov_len, INT_MAX)));
      if (n > 0) {
        buffer.Commit(n);
        from.want_read = false;
        moved = true;
        continue;
      }
      int err = SSL_get_error(from.ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ) {
        from.want_read = true;
        from.drained = true;
        return moved;
      }
      if (err == SSL_ERROR_WANT_WRITE) {
        from.want_write = true;
        return moved;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        from.read_eof = true;
        return true;
      }
      if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET) from.reset = true;
      // EOF without close_notify (truncation) or a TLS error: fail hard, so the other
      // side sees a reset rather than a clean end it could mistake for complete data.
      ERR_clear_error();
      *failed = true;
      return false;
    }
    return moved;
  }
  int count = buffer.WritableSpans(spans);
  size_t asked = spans[0].iov_len + (count == 2 ? spans[1].iov_len : 0);
  ssize_t n = readv(from.fd, spans, count);
  if (n > 0) {
    buffer.Commit(n);
    // A short read emptied the socket: reading again now would only return EAGAIN,
    // and the level-triggered loop reports the next bytes.
    if (static_cast<size_t>(n) < asked) from.drained = true;
    return true;
  }
  if (n == 0) {
    from.read_eof = true;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    from.drained = true;
    return false;
  }
  if (errno == ECONNRESET) from.reset = true;
  *failed = true;
  return false;
}

bool Connection::WriteFrom(ByteBuffer& buffer, Endpoint& to, bool* failed) {
  iovec spans[2];
  if (to.ssl) {
    BIO* socket = SSL_get_wbio(to.ssl.get());
    if (buffer.empty() && PendingWrites(socket) == 0) return false;
    // One record per SSL_write (partial writes are on): a blocked socket leaves the
    // rest in our buffer, under our backpressure, not inside BoringSSL. The records
    // of one pass leave in one send().
    CorkWrites(socket);
    bool moved = false;
    bool blocked = false, write_blocked = false;
    while (!blocked && buffer.ReadableSpans(spans) > 0) {
      const char* chunk = static_cast<const char*>(spans[0].iov_base);
      size_t len = std::min(spans[0].iov_len, kMaxTlsWrite);
      char gathered[kMaxTlsWrite];
      if (len < std::min(buffer.size(), kMaxTlsWrite)) {
        // The record would end at the wrap-around: send a whole one instead. A retry
        // after WANT_WRITE gathers the same bytes again, as SSL_write requires.
        len = buffer.Peek(gathered, kMaxTlsWrite);
        chunk = gathered;
      }
      int n = SSL_write(to.ssl.get(), chunk, static_cast<int>(len));
      if (n > 0) {
        buffer.Consume(n);
        moved = true;
        continue;
      }
      int err = SSL_get_error(to.ssl.get(), n);
      if (err == SSL_ERROR_WANT_WRITE) {
        blocked = write_blocked = true;
      } else if (err == SSL_ERROR_WANT_READ) {
        to.want_read = true;
        blocked = true;
      } else {
        if (err == SSL_ERROR_SYSCALL && (errno == ECONNRESET || errno == EPIPE))
          to.reset = true;
        ERR_clear_error();
        *failed = true;
        return false;
      }
    }
    int flushed = FlushWrites(socket);
    to.want_write = write_blocked || flushed == 0;
    if (flushed < 0) {
      if (errno == ECONNRESET || errno == EPIPE) to.reset = true;
      *failed = true;
      return false;
    }
    return moved;
  }
  if (buffer.empty()) return false;
  msghdr message{};
  message.msg_iov = spans;
  message.msg_iovlen = buffer.ReadableSpans(spans);
  ssize_t n = sendmsg(to.fd, &message, MSG_NOSIGNAL);
  if (n > 0) {
    buffer.Consume(n);
    to.want_write = false;
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    to.want_write = true;
    return false;
  }
  if (errno == ECONNRESET || errno == EPIPE) to.reset = true;
  *failed = true;
  return false;
}

bool Connection::Delivered(const ByteBuffer& buffer, const Endpoint& to) {
  return buffer.empty() && (!to.ssl || PendingWrites(SSL_get_wbio(to.ssl.get())) == 0);
}

void Connection::ShutdownWrite(Endpoint& endpoint) {
  if (endpoint.write_closed) return;
  endpoint.write_closed = true;
  if (endpoint.ssl) {
    // close_notify, then FIN: the TLS-level half-close the peer proxy relays as FIN.
    SSL_shutdown(endpoint.ssl.get());
    ERR_clear_error();
  }
  shutdown(endpoint.fd, SHUT_WR);
}

void Connection::Pump() {
  ctx_.loop->AssertInLoopThread("Connection::Pump");
  bool failed = false;
  bool progress = true;
  uint64_t from_down = 0, from_up = 0;
  // Bounded: each pass moves at most two buffers' worth before yielding to the loop.
  for (int pass = 0; progress && !failed && pass < 8; ++pass) {
    progress = false;
    size_t before = down_to_up_.size();
    if (ReadInto(downstream_, down_to_up_, &failed)) {
      progress = true;
      from_down += down_to_up_.size() - before;
    }
    if (!failed && WriteFrom(down_to_up_, upstream_, &failed)) progress = true;
    before = up_to_down_.size();
    if (!failed && ReadInto(upstream_, up_to_down_, &failed)) {
      progress = true;
      from_up += up_to_down_.size() - before;
    }
    if (!failed && WriteFrom(up_to_down_, downstream_, &failed)) progress = true;
    // Half-close: once one side has ended and its bytes are delivered, end the other.
    if (downstream_.read_eof && Delivered(down_to_up_, upstream_) &&
        !upstream_.write_closed) {
      ShutdownWrite(upstream_);
      progress = true;
    }
    if (upstream_.read_eof && Delivered(up_to_down_, downstream_) &&
        !downstream_.write_closed) {
      ShutdownWrite(downstream_);
      progress = true;
    }
  }
  int d = static_cast<int>(direction_);
  WorkerStats::Add(ctx_.stats->bytes_from_downstream[d], from_down);
  WorkerStats::Add(ctx_.stats->bytes_from_upstream[d], from_up);
  WorkerStats::Add(peer_cell_->received, from_down);
  WorkerStats::Add(peer_cell_->sent, from_up);
  bytes_from_down_ += from_down;
  bytes_from_up_ += from_up;
  if (failed) {
    close_reason_ = downstream_.reset || upstream_.reset ? "reset" : "error";
    // Propagate a reset as a reset; other failures also abort both sides.
    SetResetOnClose(downstream_.fd);
    SetResetOnClose(upstream_.fd);
    Close();
    return;
  }
  if (downstream_.read_eof && upstream_.read_eof && Delivered(down_to_up_, upstream_) &&
      Delivered(up_to_down_, downstream_)) {
    close_reason_ = "eof";
    Close();
    return;
  }
  UpdateInterest(downstream_, down_to_up_, up_to_down_);
  UpdateInterest(upstream_, up_to_down_, down_to_up_);
  // An idle connection holds no buffer memory; the next read allocates again.
  down_to_up_.ReleaseIfEmpty();
  up_to_down_.ReleaseIfEmpty();
  if (progress) {
    // Hit the pass bound with work left (e.g. TLS data buffered inside SSL): finish on
    // the next loop turn rather than starve other connections.
    // Safe to capture `this`: a closed connection is freed only after the loop has
    // run every task posted before it closed (EventLoop::DeferDelete).
    ctx_.loop->Post([this] {
      if (state_ == State::kPumping) Pump();
    });
  }
}

void Connection::UpdateInterest(Endpoint& endpoint, const ByteBuffer& inbound,
                                const ByteBuffer& outbound) {
  uint32_t events = 0;
  if ((!endpoint.read_eof && !inbound.full()) || endpoint.want_read) events |= EPOLLIN;
  if (!outbound.empty() || endpoint.want_write) events |= EPOLLOUT;
  SetInterest(endpoint, events);
}

void Connection::SetInterest(Endpoint& endpoint, uint32_t events) {
  if (!endpoint.added) {
    endpoint.added = ctx_.loop->Add(endpoint.fd, events, &endpoint);
    endpoint.registered = events;
  } else if (events != endpoint.registered) {
    ctx_.loop->Modify(endpoint.fd, events, &endpoint);
    endpoint.registered = events;
  }
}

bool Connection::CheckTimeouts(absl::Time now) {
  ctx_.loop->AssertInLoopThread("Connection::CheckTimeouts");
  if (state_ == State::kClosed) return true;
  if (now >= deadline_) {
    if (state_ == State::kConnecting) {
      close_reason_ = "connect_timeout";
      CountConnectFailure();
      SetResetOnClose(downstream_.fd);
      Close();
    } else {
      Refuse(FailReason::kTimeout, "handshake timed out");
    }
    return true;
  }
  if (state_ == State::kPumping &&
      EventLoop::CoarseNow() - last_activity_ > ctx_.options->idle_timeout) {
    close_reason_ = "idle_timeout";
    Close();
    return true;
  }
  return false;
}

bool Connection::CloseIfRevoked(const MeshPolicy& policy, absl::Time now) {
  ctx_.loop->AssertInLoopThread("Connection::CloseIfRevoked");
  if (state_ == State::kClosed || peer_identity_.empty()) return false;
  const RevocationEntry* revoked =
      policy.FindRevocation(peer_serial_, peer_identity_, now);
  if (revoked == nullptr || !revoked->close_open_connections) return false;
  close_reason_ = "revoked";
  WorkerStats::Add(ctx_.stats->revoked_closed, 1);
  SetResetOnClose(downstream_.fd);
  if (upstream_.fd >= 0) SetResetOnClose(upstream_.fd);
  Close();
  return true;
}

PeerCell* Connection::ResolvePeerCell(ResponseFlags flags) {
  // Principals only for a completed mTLS handshake; snapshot_ is the generation it used.
  const bool verified = !peer_identity_.empty() && snapshot_ != nullptr;
  return ctx_.peers->Resolve(
      direction_, mode_, flags, verified ? snapshot_->generation : 0,
      verified ? &snapshot_->identity : nullptr, peer_identity_, ctx_.stats);
}

void Connection::CountConnectFailure() {
  WorkerStats::Add(ctx_.stats->connect_failures[static_cast<int>(direction_)], 1);
  // Istio counts the downstream connection opened and closed, flagged UF.
  PeerCell* cell = ResolvePeerCell(ResponseFlags::kUpstreamFailure);
  WorkerStats::Add(cell->opened, 1);
  WorkerStats::Add(cell->closed, 1);
}

void Connection::Refuse(FailReason reason, const std::string& detail) {
  WorkerStats::Add(
      ctx_.stats->failures[static_cast<int>(direction_)][static_cast<int>(reason)], 1);
  close_reason_ = absl::StrCat("refused:", FailReasonName(reason));
  log::LogLimited(
      *ctx_.log_limiter, log::Level::kWarn, "proxy", "connection refused",
      {{"conn_id", id_},
       {"direction", direction_ == Direction::kOutbound ? "outbound" : "inbound"},
       {"reason", FailReasonName(reason)},
       {"detail", detail}});
  Close();
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  // The sockets leave the epoll set and close in the destructor, at the end of this
  // loop turn or (closed by a posted task) of the next, which does not sleep. Events
  // until then find the connection closed.
  for (Endpoint* e : {&downstream_, &upstream_}) {
    if (e->fd >= 0 && e->reset) {
      SetResetOnClose((e == &downstream_ ? upstream_ : downstream_).fd);
    }
  }
  if (counted_open_) {
    int d = static_cast<int>(direction_), m = static_cast<int>(mode_);
    WorkerStats::Add(ctx_.stats->closed[d][m], 1);
    WorkerStats::Add(ctx_.stats->active[d][m], -1);
    ctx_.stats->connection_seconds[d].Observe(
        absl::ToDoubleSeconds(absl::Now() - started_));
    WorkerStats::Add(peer_cell_->closed, 1);
  }
  if (ctx_.options->access_log) WriteAccessLog();
  // Sockets close in the destructor (EventLoop::DeferDelete).
  ctx_.on_closed(this);
}

void Connection::WriteAccessLog() const {
  log::Info("access", "connection closed",
            {{"conn_id", id_},
             {"direction", direction_ == Direction::kOutbound ? "outbound" : "inbound"},
             {"mode", mode_ == Mode::kMtls ? "mtls" : "plaintext"},
             {"peer_identity", peer_identity_},
             {"destination", destination_.text},
             {"bytes_from_downstream", bytes_from_down_},
             {"bytes_from_upstream", bytes_from_up_},
             {"duration_ms", absl::ToInt64Milliseconds(absl::Now() - started_)},
             {"close", close_reason_}});
}

}  // namespace tandem::proxy
