#include "tests/integration/loopback_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "absl/time/clock.h"

namespace tandem::testing {

sockaddr_storage LoopbackAddress(int family, int port, socklen_t* len) {
  sockaddr_storage ss{};
  if (family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    v6->sin6_addr = in6addr_loopback;
    *len = sizeof(*v6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(*v4);
  }
  return ss;
}

void LoopbackServer::Connections::Track(int fd) {
  absl::MutexLock lock(&mu_);
  open_fds_.insert(fd);
}

void LoopbackServer::Connections::Close(int fd) {
  absl::MutexLock lock(&mu_);
  open_fds_.erase(fd);
  close(fd);
}

LoopbackServer::LoopbackServer(int family, Handler handler)
    : handler_(std::move(handler)) {
  listen_fd_ = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len;
  sockaddr_storage addr = LoopbackAddress(family, 0, &len);
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len);
  listen(listen_fd_, 512);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                   : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

LoopbackServer::~LoopbackServer() { Stop(); }

void LoopbackServer::Stop() {
  if (stopping_.exchange(true)) return;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  {
    absl::MutexLock lock(&connections_->mu_);
    for (int fd : connections_->open_fds_) shutdown(fd, SHUT_RDWR);
  }
  // Bounded wait for the handlers (shutdown wakes their reads and polls at once).
  for (int i = 0; i < 1000; ++i) {
    {
      absl::MutexLock lock(&connections_->mu_);
      if (connections_->active_ == 0) return;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

void LoopbackServer::AcceptLoop() {
  while (!stopping_.load()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_.load()) return;
      continue;
    }
    accepted_.fetch_add(1);
    {
      absl::MutexLock lock(&connections_->mu_);
      connections_->open_fds_.insert(fd);
      ++connections_->active_;
    }
    // The handler is copied: the thread may outlive this server's Stop() deadline.
    std::thread([handler = handler_, connections = connections_, fd] {
      handler(fd, *connections);
      connections->Close(fd);
      absl::MutexLock lock(&connections->mu_);
      --connections->active_;
    }).detach();
  }
}

}  // namespace tandem::testing
