#include "tests/integration/tcp_forwarder.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

TcpForwarder::TcpForwarder()
    : server_(AF_INET, [target = target_port_](int fd, LoopbackServer::Connections& c) {
        Relay(fd, target->load(), c);
      }) {}

void TcpForwarder::Relay(int client_fd, int target_port,
                         LoopbackServer::Connections& conns) {
  int server_fd = target_port > 0 ? ConnectLoopback(target_port) : -1;
  if (server_fd < 0) return;  // the client sees the server as down
  conns.Track(server_fd);
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
  conns.Close(server_fd);
}

}  // namespace tandem::testing
