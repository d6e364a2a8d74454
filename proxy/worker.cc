#include "proxy/worker.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace tandem::proxy {
namespace {

// How often the loop wakes to check deadlines when idle.
constexpr absl::Duration kTick = absl::Milliseconds(100);

// Where the client meant to go before iptables redirected it to us. Without a redirect
// (or without netfilter) it is the socket's own local address. `family` is the
// listener's: an IPv4 socket is never in IPv6's table, so it is asked once; an IPv6
// listener may also carry IPv4-mapped connections, so it is asked both.
SocketAddress OriginalDestination(int fd, int family) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (family == AF_INET6 &&
      getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) == 0) {
    return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  len = sizeof(ss);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) == 0) {
    return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

bool SameEndpoint(const SocketAddress& a, const SocketAddress& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

absl::StatusOr<int> OpenListener(const SocketAddress& address, bool reuse_port) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (address.family() == AF_INET6 && address.is_wildcard()) {
    // [::] takes IPv4 too (as IPv4-mapped), whatever net.ipv6.bindv6only says: one
    // listener serves a dual-stack pod.
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  if (bind(fd, address.get(), address.length) != 0 || listen(fd, 4096) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address.text, ": ", std::strerror(err)));
  }
  return fd;
}

Worker::Worker(const ProxyOptions* options, TlsContextManager* tls,
               MeshPolicyHolder* policy, std::atomic<int>* global_connections,
               std::atomic<uint64_t>* next_id, PeerLabelTable* peer_labels)
    : options_(options),
      tls_(tls),
      policy_(policy),
      global_connections_(global_connections),
      next_id_(next_id),
      peers_(peer_labels) {
  outbound_.worker = inbound_.worker = this;
  outbound_.direction = Direction::kOutbound;
  inbound_.direction = Direction::kInbound;
  context_ = WorkerContext{&loop_,
                           &stats_,
                           &peers_,
                           options_,
                           tls_,
                           policy_,
                           global_connections_,
                           next_id_,
                           &log_limiter_,
                           [this](Connection* c) {
                             loop_.AssertInLoopThread("WorkerContext::on_closed");
                             open_.fetch_sub(1, std::memory_order_relaxed);
                             global_connections_->fetch_sub(1, std::memory_order_relaxed);
                             auto it = connections_.find(c);
                             if (it == connections_.end()) return;
                             Connection* raw = it->second.release();
                             connections_.erase(it);
                             loop_.DeferDelete([raw] { delete raw; });
                           }};
}

Worker::~Worker() {
  Stop();
  Join();
  CloseListeners();
  connections_.clear();
}

absl::Status Worker::Listen() {
  if (!loop_.ok()) return absl::InternalError("epoll/eventfd setup failed");
  for (Listener* l : {&outbound_, &inbound_}) {
    const SocketAddress& address =
        l->direction == Direction::kOutbound ? options_->outbound : options_->inbound;
    absl::StatusOr<int> fd = OpenListener(address, /*reuse_port=*/true);
    if (!fd.ok()) return fd.status();
    l->fd = *fd;
    loop_.Add(l->fd, EPOLLIN, l);
  }
  return absl::OkStatus();
}

SocketAddress Worker::ListenAddress(Direction direction) const {
  const Listener& l = direction == Direction::kOutbound ? outbound_ : inbound_;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::StopAccepting() {
  loop_.Post([this] { CloseListeners(); });
}

void Worker::Stop() { loop_.Stop(); }

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

std::vector<Connection*> Worker::ConnectionList() const {
  // A copy: closing a connection removes it from the map.
  std::vector<Connection*> all;
  all.reserve(connections_.size());
  for (const auto& entry : connections_) all.push_back(entry.first);
  return all;
}

void Worker::CloseRevoked(std::shared_ptr<const MeshPolicy> policy) {
  loop_.Post([this, policy = std::move(policy)] {
    absl::Time now = absl::Now();
    for (Connection* conn : ConnectionList()) conn->CloseIfRevoked(*policy, now);
  });
}

void Worker::CloseListeners() {
  for (Listener* l : {&outbound_, &inbound_}) {
    if (l->fd < 0) continue;
    loop_.Remove(l->fd);
    close(l->fd);
    l->fd = -1;
  }
}

void Worker::PauseAccepting(Listener& listener, int error) {
  // The pending connection stays in the backlog and keeps the level-triggered listener
  // readable: polling it now would spin. Waiting a tick lets descriptors free up; the
  // backlog is served then (or the kernel refuses SYNs once it is full).
  loop_.Modify(listener.fd, 0, &listener);
  listener.paused = true;
  WorkerStats::Add(stats_.accept_paused, 1);
  log::LogLimited(
      log_limiter_, log::Level::kError, "proxy", "accept failed; pausing the listener",
      {{"error", std::strerror(error)}, {"pause_ms", absl::ToInt64Milliseconds(kTick)}});
}

void Worker::ResumeAccepting() {
  for (Listener* l : {&outbound_, &inbound_}) {
    if (!l->paused || l->fd < 0) continue;
    l->paused = false;
    loop_.Modify(l->fd, EPOLLIN, l);
  }
}

void Worker::Run() {
  absl::Duration next_check = EventLoop::CoarseNow() + kTick;
  while (loop_.RunOnce(kTick)) {
    // Asked after every event batch: the coarse clock costs a tenth of absl::Now().
    absl::Duration elapsed = EventLoop::CoarseNow();
    if (elapsed < next_check) continue;
    next_check = elapsed + kTick;
    ResumeAccepting();
    // Deadlines: a linear sweep every tick is cheap next to the I/O (10k connections
    // cost ~10 µs) and needs no timer bookkeeping on the data path.
    absl::Time now = absl::Now();
    for (Connection* conn : ConnectionList()) conn->CheckTimeouts(now);
  }
}

void Worker::Accept(Listener& listener) {
  loop_.AssertInLoopThread("Worker::Accept");
  // Accept a bounded batch per wake so one busy listener cannot starve the loop.
  for (int i = 0; i < 64 && listener.fd >= 0; ++i) {
    int fd = accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) PauseAccepting(listener, errno);
      return;
    }
    if (global_connections_->fetch_add(1, std::memory_order_relaxed) >=
        options_->max_connections) {
      global_connections_->fetch_sub(1, std::memory_order_relaxed);
      WorkerStats::Add(stats_.over_limit, 1);
      close(fd);
      continue;
    }
    SocketAddress destination;
    if (listener.direction == Direction::kOutbound) {
      destination = options_->has_fixed_destination
                        ? options_->fixed_destination
                        : OriginalDestination(fd, options_->outbound.family());
      if (SameEndpoint(destination, options_->outbound) ||
          destination.port() == options_->outbound.port()) {
        // Not redirected: proxying to ourselves would loop.
        global_connections_->fetch_sub(1, std::memory_order_relaxed);
        WorkerStats::Add(stats_.failures[0][static_cast<int>(FailReason::kMalformed)], 1);
        close(fd);
        continue;
      }
    } else {
      destination = OriginalDestination(fd, options_->inbound.family());
    }
    open_.fetch_add(1, std::memory_order_relaxed);
    auto conn = std::make_unique<Connection>(context_, listener.direction, fd,
                                             std::move(destination));
    Connection* raw = conn.get();
    connections_.emplace(raw, std::move(conn));
    raw->Start();
  }
}

}  // namespace tandem::proxy
