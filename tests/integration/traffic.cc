#include "tests/integration/traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::testing {
int ConnectLoopback(int port, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  socklen_t len;
  sockaddr_storage addr = LoopbackAddress(family, port, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

namespace {

bool WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    len -= n;
  }
  return true;
}

bool ReadExactly(int fd, char* data, size_t len) {
  while (len > 0) {
    ssize_t n = read(fd, data, len);
    if (n <= 0) return false;
    data += n;
    len -= n;
  }
  return true;
}

// Sends `payload` and checks the same bytes come back.
bool EchoRound(int fd, const std::string& payload, std::string* error) {
  std::string back(payload.size(), '\0');
  if (!WriteAll(fd, payload.data(), payload.size())) {
    *error = absl::StrCat("write failed: ", strerror(errno));
    return false;
  }
  if (!ReadExactly(fd, back.data(), back.size())) {
    *error = absl::StrCat("read failed: ", errno ? strerror(errno) : "EOF");
    return false;
  }
  if (back != payload) {
    *error = "echoed bytes differ (corruption)";
    return false;
  }
  return true;
}

}  // namespace

EchoServer::EchoServer(int family)
    : server_(family, [](int fd, LoopbackServer::Connections&) {
        char buf[16384];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
          if (!WriteAll(fd, buf, n)) break;
        }
        shutdown(fd, SHUT_WR);
      }) {}

TrafficReport RunEchoTraffic(int port, absl::Duration duration, int short_workers,
                             int long_connections, size_t payload_bytes,
                             int min_short_per_worker) {
  TrafficReport report;
  absl::Mutex mu;
  absl::Time end = absl::Now() + duration;
  absl::Time hard_end = end + absl::Seconds(30);
  auto record_error = [&](std::string e) {
    absl::MutexLock lock(&mu);
    if (report.errors.size() < 10) report.errors.push_back(std::move(e));
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < short_workers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w + 1);
      int64_t ok = 0, failed = 0, bytes = 0;
      // Bounded in time and in count.
      for (int i = 0; i < 1000000; ++i) {
        absl::Time now = absl::Now();
        if (now >= hard_end || (now >= end && i >= min_short_per_worker)) break;
        std::string payload(payload_bytes, '\0');
        for (char& c : payload) c = static_cast<char>(rng());
        int fd = ConnectLoopback(port);
        std::string error;
        if (fd < 0) {
          error = absl::StrCat("connect failed: ", strerror(errno));
        } else if (EchoRound(fd, payload, &error)) {
          shutdown(fd, SHUT_WR);
          char c;
          if (read(fd, &c, 1) != 0) error = "no clean EOF after half-close";
        }
        if (fd >= 0) close(fd);
        if (error.empty()) {
          ++ok;
          bytes += payload.size();
        } else {
          ++failed;
          record_error(absl::StrCat("short #", i, ": ", error));
        }
      }
      absl::MutexLock lock(&mu);
      report.short_ok += ok;
      report.short_failed += failed;
      report.bytes_verified += bytes;
    });
  }
  for (int l = 0; l < long_connections; ++l) {
    threads.emplace_back([&, l] {
      std::mt19937_64 rng(1000 + l);
      int fd = ConnectLoopback(port);
      int64_t rounds = 0, bytes = 0;
      bool failed = fd < 0;
      if (failed) record_error(absl::StrCat("long #", l, ": connect failed"));
      while (!failed && absl::Now() < end && rounds < 100000) {
        std::string payload(1024, '\0');
        for (char& c : payload) c = static_cast<char>(rng());
        std::string error;
        if (!EchoRound(fd, payload, &error)) {
          failed = true;
          record_error(absl::StrCat("long #", l, " round ", rounds, ": ", error));
          break;
        }
        ++rounds;
        bytes += payload.size();
        absl::SleepFor(absl::Milliseconds(50));
      }
      if (fd >= 0) close(fd);
      absl::MutexLock lock(&mu);
      report.long_rounds_ok += rounds;
      report.long_failed += failed ? 1 : 0;
      report.bytes_verified += bytes;
    });
  }
  for (std::thread& t : threads) t.join();
  return report;
}

}  // namespace tandem::testing
