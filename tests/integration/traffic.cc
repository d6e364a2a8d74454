#include "tests/integration/traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

TrafficReport RunEchoTraffic(int port, const EchoTrafficOptions& o) {
  TrafficReport report;
  absl::Mutex mu;
  absl::Time end = absl::Now() + o.duration;
  absl::Time hard_end = end + absl::Seconds(30);
  auto stopped = [&] { return o.stop != nullptr && o.stop->load(); };
  auto record_failure = [&](TrafficFailure::Kind kind, absl::Time start, std::string e) {
    absl::MutexLock lock(&mu);
    if (o.record_failures && report.failures.size() < 1000000) {
      report.failures.push_back(
          {kind, start, absl::Now(), report.failures.size() < 1000 ? e : ""});
    }
    if (report.errors.size() < 10) report.errors.push_back(std::move(e));
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < o.short_workers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w + 1);
      int64_t ok = 0, failed = 0, bytes = 0;
      // Bounded in time and in count. At least one attempt however late the thread
      // starts: on a loaded machine it can start after `end` (a TSan run did).
      for (int i = 0; i < 10000000; ++i) {
        absl::Time now = absl::Now();
        if (now >= hard_end || stopped() ||
            (now >= end && i >= std::max(1, o.min_short_per_worker))) {
          break;
        }
        if (i > 0 && o.short_pause > absl::ZeroDuration()) absl::SleepFor(o.short_pause);
        std::string payload(o.payload_bytes, '\0');
        for (char& c : payload) c = static_cast<char>(rng());
        absl::Time start = absl::Now();
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
          record_failure(TrafficFailure::Kind::kShort, start,
                         absl::StrCat("short #", i, ": ", error));
          absl::SleepFor(o.pause_after_failure);
        }
      }
      absl::MutexLock lock(&mu);
      report.short_ok += ok;
      report.short_failed += failed;
      report.bytes_verified += bytes;
    });
  }
  for (int l = 0; l < o.long_connections; ++l) {
    threads.emplace_back([&, l] {
      std::mt19937_64 rng(1000 + l);
      int64_t rounds = 0, bytes = 0, failed = 0, connections = 0;
      // Each pass is one keep-alive connection; a failed one is opened again only
      // with reconnect_long. Bounded in time and in count; the first connection and
      // its first round happen however late the thread starts.
      for (int pass = 0; pass < 100000 && (pass == 0 || absl::Now() < end) && !stopped();
           ++pass) {
        if (pass > 0) {
          if (!o.reconnect_long) break;
          absl::SleepFor(o.long_interval);
        }
        ++connections;
        absl::Time start = absl::Now();
        int fd = ConnectLoopback(port);
        if (fd < 0) {
          ++failed;
          record_failure(TrafficFailure::Kind::kLongConnect, start,
                         absl::StrCat("long #", l, ": connect failed"));
          continue;
        }
        for (int64_t r = 0; (r == 0 || absl::Now() < end) && !stopped() && r < 10000000;
             ++r) {
          std::string payload(o.long_payload_bytes, '\0');
          for (char& c : payload) c = static_cast<char>(rng());
          absl::Time round_start = absl::Now();
          std::string error;
          if (!EchoRound(fd, payload, &error)) {
            ++failed;
            // The first round completes the connection (the handshakes happen then).
            record_failure(r == 0 ? TrafficFailure::Kind::kLongConnect
                                  : TrafficFailure::Kind::kLongRound,
                           r == 0 ? start : round_start,
                           absl::StrCat("long #", l, " round ", r, ": ", error));
            break;
          }
          ++rounds;
          bytes += payload.size();
          absl::SleepFor(o.long_interval);
        }
        close(fd);
      }
      absl::MutexLock lock(&mu);
      report.long_rounds_ok += rounds;
      report.long_failed += failed;
      report.long_connections += connections;
      report.bytes_verified += bytes;
    });
  }
  for (std::thread& t : threads) t.join();
  return report;
}

TrafficReport RunEchoTraffic(int port, absl::Duration duration, int short_workers,
                             int long_connections, size_t payload_bytes,
                             int min_short_per_worker) {
  EchoTrafficOptions o;
  o.duration = duration;
  o.short_workers = short_workers;
  o.long_connections = long_connections;
  o.payload_bytes = payload_bytes;
  o.min_short_per_worker = min_short_per_worker;
  return RunEchoTraffic(port, o);
}

}  // namespace tandem::testing
