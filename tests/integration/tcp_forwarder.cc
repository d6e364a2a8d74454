#include "tests/integration/tcp_forwarder.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {
namespace {

// Moves what `from` has to `to`; false at EOF or on an error.
bool Pump(int from, int to) {
  char buf[16384];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

TcpForwarder::TcpForwarder() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(listen_fd_, 128);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpForwarder::~TcpForwarder() { Stop(); }

void TcpForwarder::Stop() {
  if (stopping_.exchange(true)) return;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  {
    absl::MutexLock lock(&conns_->mu);
    for (int fd : conns_->open_fds) shutdown(fd, SHUT_RDWR);
  }
  // Bounded wait for the relay threads (shutdown wakes their polls at once).
  for (int i = 0; i < 1000; ++i) {
    {
      absl::MutexLock lock(&conns_->mu);
      if (conns_->active == 0) return;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

void TcpForwarder::AcceptLoop() {
  while (!stopping_.load()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_.load()) return;
      continue;
    }
    absl::MutexLock lock(&conns_->mu);
    conns_->open_fds.insert(fd);
    ++conns_->active;
    std::thread(&TcpForwarder::Relay, conns_, fd, target_port_.load()).detach();
  }
}

void TcpForwarder::Relay(std::shared_ptr<Connections> conns, int client_fd,
                         int target_port) {
  int server_fd = target_port > 0 ? ConnectLoopback(target_port) : -1;
  if (server_fd >= 0) {
    {
      absl::MutexLock lock(&conns->mu);
      conns->open_fds.insert(server_fd);
    }
    // ConnectLoopback's 5 s timeouts would cut an idle stream: poll decides instead.
    timeval none{0, 0};
    setsockopt(server_fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    setsockopt(server_fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
    pollfd fds[2] = {{client_fd, POLLIN, 0}, {server_fd, POLLIN, 0}};
    bool open = true;
    while (open && poll(fds, 2, -1) > 0) {
      if (fds[0].revents != 0) open = Pump(client_fd, server_fd);
      if (open && fds[1].revents != 0) open = Pump(server_fd, client_fd);
    }
  }
  absl::MutexLock lock(&conns->mu);
  // Closed under the lock so Stop() never shuts down a reused descriptor number.
  for (int fd : {client_fd, server_fd}) {
    if (fd < 0) continue;
    conns->open_fds.erase(fd);
    close(fd);
  }
  --conns->active;
}

}  // namespace tandem::testing
