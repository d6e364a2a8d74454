// A small load tool for bench/run.sh, so the benchmark does not measure a slow client.
//   loadgen echo PORT                      epoll echo server on 127.0.0.1:PORT
//   loadgen connrate PORT SECONDS THREADS  new connection per request (64 B echo)
//   loadgen latency PORT SECONDS CONNS RPS persistent connections at a fixed total rate
//   loadgen hold PORT COUNT SECONDS [THREADS]  open COUNT connections (THREADS at a
//                                          time), echo once on each, hold them
// Prints one line of key=value results. Every loop is bounded by SECONDS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Echo(int fd) {
  char msg[64], back[64];
  std::memset(msg, 'x', sizeof(msg));
  if (write(fd, msg, sizeof(msg)) != sizeof(msg)) return false;
  size_t got = 0;
  while (got < sizeof(back)) {
    ssize_t n = read(fd, back + got, sizeof(back) - got);
    if (n <= 0) return false;
    got += n;
  }
  return std::memcmp(msg, back, sizeof(msg)) == 0;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

int EchoServer(int port) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(lfd, 4096) != 0) {
    std::perror("echo: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = lfd}};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<epoll_event> events(256);
  char buf[65536];
  while (true) {
    int n = epoll_wait(ep, events.data(), events.size(), -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          epoll_event cev{EPOLLIN, {.fd = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof(buf));
      if (r <= 0) {
        close(fd);
        continue;
      }
      ssize_t off = 0;
      while (off < r) {  // echo servers may block briefly; fine for a benchmark backend
        ssize_t w = write(fd, buf + off, r - off);
        if (w < 0 && errno != EAGAIN) break;
        if (w > 0) off += w;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: see the comment at the top of bench/loadgen.cc\n");
    return 2;
  }
  std::string mode = argv[1];
  int port = std::atoi(argv[2]);
  rlimit rl{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);
  if (mode == "echo") return EchoServer(port);
  if (mode == "connrate" && argc == 5) {
    double seconds = std::atof(argv[3]);
    int threads = std::atoi(argv[4]);
    std::atomic<long> ok{0}, failed{0};
    std::mutex mu;
    std::vector<double> lat;
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        std::vector<double> mine;
        while (Clock::now() < end) {
          auto start = Clock::now();
          int fd = Connect(port);
          bool good = fd >= 0 && Echo(fd);
          if (fd >= 0) close(fd);
          (good ? ok : failed)++;
          if (good)
            mine.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        }
        std::lock_guard<std::mutex> lock(mu);
        lat.insert(lat.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : ts) t.join();
    std::printf("conns_per_s=%.0f failed=%ld p50_ms=%.3f p99_ms=%.3f\n", ok / seconds,
                failed.load(), Percentile(lat, 0.5) * 1e3, Percentile(lat, 0.99) * 1e3);
    return 0;
  }
  if (mode == "latency" && argc == 6) {
    double seconds = std::atof(argv[3]);
    int conns = std::atoi(argv[4]);
    double rps = std::atof(argv[5]);
    std::mutex mu;
    std::vector<double> lat;
    std::atomic<long> failed{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < conns; ++c) {
      ts.emplace_back([&] {
        int fd = Connect(port);
        if (fd < 0) {
          failed++;
          return;
        }
        auto interval = std::chrono::duration<double>(conns / rps);
        auto next = Clock::now();
        auto end = Clock::now() + std::chrono::duration<double>(seconds);
        std::vector<double> mine;
        while (Clock::now() < end) {
          std::this_thread::sleep_until(next);
          next += std::chrono::duration_cast<Clock::duration>(interval);
          auto start = Clock::now();
          if (!Echo(fd)) {
            failed++;
            break;
          }
          mine.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        }
        close(fd);
        std::lock_guard<std::mutex> lock(mu);
        lat.insert(lat.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : ts) t.join();
    std::printf("requests=%zu failed=%ld p50_us=%.1f p99_us=%.1f\n", lat.size(),
                failed.load(), Percentile(lat, 0.5) * 1e6, Percentile(lat, 0.99) * 1e6);
    return 0;
  }
  if (mode == "hold" && (argc == 5 || argc == 6)) {
    int count = std::atoi(argv[3]);
    double seconds = std::atof(argv[4]);
    int threads = argc == 6 ? std::max(1, std::atoi(argv[5])) : 1;
    // Connecting is bounded too: a pair that stops accepting ends the attempt.
    auto give_up = Clock::now() + std::chrono::seconds(60);
    std::mutex mu;
    std::vector<int> fds;
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        while (next.fetch_add(1) < count && Clock::now() < give_up) {
          int fd = Connect(port);
          if (fd >= 0 && !Echo(fd)) {
            close(fd);
            fd = -1;
          }
          if (fd < 0) return;
          std::lock_guard<std::mutex> lock(mu);
          fds.push_back(fd);
        }
      });
    }
    for (auto& t : ts) t.join();
    std::printf("held=%zu\n", fds.size());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    for (int fd : fds) close(fd);
    return 0;
  }
  std::fprintf(stderr, "bad arguments\n");
  return 2;
}
