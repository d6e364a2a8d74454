#include "tests/integration/unix_socket_relay.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace tandem::testing {
namespace {

bool FillAddress(const std::string& path, sockaddr_un* addr) {
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

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

std::unique_ptr<UnixSocketRelay> UnixSocketRelay::Create(std::string path,
                                                         std::string target) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) return nullptr;
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  mode_t old = umask(0177);
  bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
            listen(fd, 64) == 0;
  umask(old);
  if (!ok) {
    if (fd >= 0) close(fd);
    return nullptr;
  }
  return std::unique_ptr<UnixSocketRelay>(
      new UnixSocketRelay(std::move(path), std::move(target), fd));
}

UnixSocketRelay::UnixSocketRelay(std::string path, std::string target, int listen_fd)
    : path_(std::move(path)), target_(std::move(target)), listen_fd_(listen_fd) {
  thread_ = std::thread([this] { Loop(); });
}

UnixSocketRelay::~UnixSocketRelay() {
  stopping_.store(true);
  thread_.join();
  close(listen_fd_);
  unlink(path_.c_str());
}

void UnixSocketRelay::Loop() {
  struct Pair {
    int client, server;
  };
  std::vector<Pair> pairs;
  int64_t generation = sever_generation_.load();
  auto close_all = [&] {
    for (const Pair& p : pairs) {
      close(p.client);
      close(p.server);
    }
    pairs.clear();
  };
  while (!stopping_.load()) {
    if (int64_t g = sever_generation_.load(); g != generation) {
      generation = g;
      close_all();
    }
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
    for (const Pair& p : pairs) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.server, POLLIN, 0});
    }
    // A short slice, so Sever() and the destructor act promptly.
    if (poll(fds.data(), fds.size(), 20) <= 0) continue;
    std::vector<Pair> open;
    for (size_t i = 0; i < pairs.size(); ++i) {
      const Pair& p = pairs[i];
      bool alive = true;
      if (fds[1 + 2 * i].revents != 0) alive = Pump(p.client, p.server);
      if (alive && fds[2 + 2 * i].revents != 0) alive = Pump(p.server, p.client);
      if (alive) {
        open.push_back(p);
      } else {
        close(p.client);
        close(p.server);
      }
    }
    pairs = std::move(open);
    if (fds[0].revents & POLLIN) {
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      sockaddr_un addr;
      int server = -1;
      if (!blocked_.load() && FillAddress(target_, &addr)) {
        server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (server >= 0 &&
            connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
          close(server);
          server = -1;
        }
      }
      if (server < 0) {
        close(client);  // blocked, or the target is down
      } else {
        pairs.push_back({client, server});
        relayed_.fetch_add(1);
      }
    }
  }
  close_all();
}

}  // namespace tandem::testing
