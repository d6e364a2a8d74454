// tandem-testapp: a plaintext HTTP app for the image and mesh end-to-end tests. It knows
// nothing about TLS or the mesh; the sidecar around it does.
//
//   tandem-testapp serve [--port N]     (default 8080; 0 picks one; prints "listening
//   on")
//       GET /ready -> 200 "ready"; GET /echo?msg=M -> 200 M; POST /echo -> 200 body;
//       anything else -> 404. Every response carries X-Peer: the address the app saw.
//       Logs one line per request with that peer address. `&delay_ms=D` on /echo
//       (at most 60000) answers D ms later, after logging "testapp: holding ...", so a
//       test can stop the pod while a request is in flight. On SIGTERM the server
//       stops accepting, finishes the requests in flight, and exits 0.
//   tandem-testapp client --url http://IP:PORT/PATH [--count N] [--timeout-ms T]
//       Sends N GETs (one connection each), prints "ok=A failed=B", exits 1 on any
//       failure. A request succeeds on status 200 and, for /echo?msg=M, a body of M.
//
// Threading: the server accepts on the main thread and serves each connection on its
// own detached thread (one request per connection). The client is single-threaded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "tests/app/http_lite.h"

namespace tandem::testapp {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: tandem-testapp serve [--port N]\n"
               "       tandem-testapp client --url http://IP:PORT/PATH [--count N] "
               "[--timeout-ms T]\n");
  return 2;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads up to the end of a message head into *head, and what followed into *rest.
bool ReadHead(int fd, std::string* head, std::string* rest) {
  std::string buffer;
  char chunk[4096];
  while (buffer.size() <= kMaxHeadBytes) {
    size_t end = buffer.find("\r\n\r\n");
    if (end != std::string::npos) {
      *head = buffer.substr(0, end);
      *rest = buffer.substr(end + 4);
      return true;
    }
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  return false;
}

// Reads until `body` holds `length` bytes (or, without a length, until EOF).
bool ReadBody(int fd, std::optional<size_t> length, std::string* body) {
  char chunk[4096];
  while (!length || body->size() < *length) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0) return false;
    if (n == 0) return !length;
    body->append(chunk, static_cast<size_t>(n));
    if (body->size() > kMaxBodyBytes) return false;
  }
  return body->size() == *length;
}

std::string PeerAddress(const sockaddr_storage& addr) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &v4.sin_addr, ip, sizeof(ip));
    port = ntohs(v4.sin_port);
    return std::string(ip) + ":" + std::to_string(port);
  }
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
  inet_ntop(AF_INET6, &v6.sin6_addr, ip, sizeof(ip));
  port = ntohs(v6.sin6_port);
  return "[" + std::string(ip) + "]:" + std::to_string(port);
}

void SetTimeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool ParseInt(const char* text, int min, int max, int* out);

// Requests being served: SIGTERM waits for them to finish.
std::atomic<int> in_flight{0};

void Serve(int fd, std::string peer) {
  // A peer that stalls gives up its thread after this long.
  SetTimeouts(fd, 10000);
  std::string head, body, error;
  int status = 400;
  std::string response_body = "bad request\n";
  std::string what = "-";
  if (ReadHead(fd, &head, &body)) {
    std::optional<RequestHead> request = ParseRequestHead(head, &error);
    if (request) {
      what = request->method + " " + request->target;
      std::string_view path = TargetPath(request->target);
      if (request->method == "POST" && path == "/echo" &&
          ReadBody(fd, request->content_length, &body)) {
        status = 200;
        response_body = body;
      } else if (request->method == "GET" && path == "/ready") {
        status = 200;
        response_body = "ready\n";
      } else if (request->method == "GET" && path == "/echo") {
        std::optional<std::string> msg = QueryParam(request->target, "msg");
        std::optional<std::string> delay = QueryParam(request->target, "delay_ms");
        int delay_ms = 0;
        if (msg && (!delay || ParseInt(delay->c_str(), 0, 60000, &delay_ms))) {
          status = 200;
          response_body = *msg;
          if (delay_ms > 0) {
            std::printf("testapp: holding %s from %s for %d ms\n", what.c_str(),
                        peer.c_str(), delay_ms);
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
          }
        } else {
          response_body = "missing or badly encoded msg or delay_ms\n";
        }
      } else {
        status = 404;
        response_body = "not found\n";
      }
    } else {
      response_body = error + "\n";
    }
  }
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
  std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                         "\r\nContent-Type: text/plain\r\nContent-Length: " +
                         std::to_string(response_body.size()) + "\r\nX-Peer: " + peer +
                         "\r\nConnection: close\r\n\r\n" + response_body;
  SendAll(fd, response);
  std::printf("testapp: %s from %s -> %d\n", what.c_str(), peer.c_str(), status);
  close(fd);
  in_flight.fetch_sub(1);
}

// SIGTERM and SIGINT arrive here (blocked everywhere else): stop accepting, let the
// requests in flight finish (bounded by their own delays and timeouts), exit 0.
void DrainOnSignal(int listener) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int sig = 0;
  sigwait(&signals, &sig);
  shutdown(listener, SHUT_RDWR);
  std::printf("testapp: signal %d, draining %d requests\n", sig, in_flight.load());
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::printf("testapp: drained\n");
  std::exit(0);
}

int RunServer(int port) {
  int listener = socket(AF_INET6, SOCK_STREAM, 0);
  bool v6 = listener >= 0;
  if (!v6) listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1, zero = 0;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len;
  if (v6) {
    // Dual-stack: IPv4 peers show up as ::ffff:a.b.c.d.
    setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    auto& a6 = reinterpret_cast<sockaddr_in6&>(addr);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(a6);
  } else {
    auto& a4 = reinterpret_cast<sockaddr_in&>(addr);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(a4);
  }
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listener, 128) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "tandem-testapp: cannot listen on port %d: %s\n", port,
                 std::strerror(errno));
    return 1;
  }
  int bound = ntohs(v6 ? reinterpret_cast<sockaddr_in6&>(addr).sin6_port
                       : reinterpret_cast<sockaddr_in&>(addr).sin_port);
  std::printf("tandem-testapp: listening on port %d\n", bound);
  std::thread(DrainOnSignal, listener).detach();
  for (;;) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    int fd = accept(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (fd < 0) {
      if (errno == EINVAL) break;  // shut down by DrainOnSignal, which exits
      continue;
    }
    in_flight.fetch_add(1);
    std::thread(Serve, fd, PeerAddress(peer)).detach();
  }
  for (;;) pause();
}

// Sends one GET; returns "" on success, else why it failed.
std::string Fetch(const Url& url, int timeout_ms) {
  sockaddr_storage addr{};
  socklen_t len;
  auto& a4 = reinterpret_cast<sockaddr_in&>(addr);
  auto& a6 = reinterpret_cast<sockaddr_in6&>(addr);
  if (inet_pton(AF_INET, url.host.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<uint16_t>(url.port));
    len = sizeof(a4);
  } else {
    inet_pton(AF_INET6, url.host.c_str(), &a6.sin6_addr);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<uint16_t>(url.port));
    len = sizeof(a6);
  }
  int fd = socket(addr.ss_family, SOCK_STREAM, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  SetTimeouts(fd, timeout_ms);  // SO_SNDTIMEO also bounds connect() on Linux
  std::string failure;
  std::string head, body, error;
  std::string host =
      url.host.find(':') == std::string::npos ? url.host : "[" + url.host + "]";
  std::string request = "GET " + url.target + " HTTP/1.1\r\nHost: " + host + ":" +
                        std::to_string(url.port) + "\r\nConnection: close\r\n\r\n";
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    failure = std::string("connect: ") + std::strerror(errno);
  } else if (!SendAll(fd, request)) {
    failure = std::string("send: ") + std::strerror(errno);
  } else if (!ReadHead(fd, &head, &body)) {
    failure = "no complete response head";
  } else if (std::optional<ResponseHead> response = ParseResponseHead(head, &error);
             !response) {
    failure = error;
  } else if (!ReadBody(fd, response->content_length, &body)) {
    failure = "short response body";
  } else if (response->status != 200) {
    failure = "status " + std::to_string(response->status);
  } else if (TargetPath(url.target) == "/echo") {
    std::optional<std::string> msg = QueryParam(url.target, "msg");
    if (msg && body != *msg) failure = "echo mismatch: got \"" + body + "\"";
  }
  close(fd);
  return failure;
}

int RunClient(const std::string& url_text, int count, int timeout_ms) {
  std::string error;
  std::optional<Url> url = ParseUrl(url_text, &error);
  if (!url) {
    std::fprintf(stderr, "tandem-testapp: bad --url %s: %s\n", url_text.c_str(),
                 error.c_str());
    return 2;
  }
  int ok = 0, failed = 0;
  for (int i = 0; i < count; ++i) {
    std::string failure = Fetch(*url, timeout_ms);
    if (failure.empty()) {
      ++ok;
    } else {
      ++failed;
      std::fprintf(stderr, "tandem-testapp: request %d to %s failed: %s\n", i + 1,
                   url_text.c_str(), failure.c_str());
    }
  }
  std::printf("ok=%d failed=%d\n", ok, failed);
  return failed == 0 ? 0 : 1;
}

bool ParseInt(const char* text, int min, int max, int* out) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < min || value > max) return false;
  *out = static_cast<int>(value);
  return true;
}

}  // namespace
}  // namespace tandem::testapp

int main(int argc, char** argv) {
  using namespace tandem::testapp;
  // As a container's PID 1 the app has no default SIGTERM action: the server drains
  // and exits on it (DrainOnSignal), the client exits at once, so `podman stop` does
  // not wait out its timeout. Blocked here, before any thread, so only sigwait sees it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return Usage();
  std::string mode = argv[1];
  int port = 8080, count = 1, timeout_ms = 5000;
  std::string url;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--port" && mode == "serve") {
      ok = ParseInt(value, 0, 65535, &port);
    } else if (flag == "--url" && mode == "client") {
      url = value;
    } else if (flag == "--count" && mode == "client") {
      ok = ParseInt(value, 1, 1000000, &count);
    } else if (flag == "--timeout-ms" && mode == "client") {
      ok = ParseInt(value, 1, 600000, &timeout_ms);
    } else {
      std::fprintf(stderr, "tandem-testapp: unknown flag %s for %s\n", flag.c_str(),
                   mode.c_str());
      return Usage();
    }
    if (!ok) {
      std::fprintf(stderr, "tandem-testapp: bad value for %s: %s\n", flag.c_str(), value);
      return 2;
    }
  }
  if (mode == "serve") return RunServer(port);
  if (mode == "client" && !url.empty()) {
    std::thread([] {
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGTERM);
      sigaddset(&stop, SIGINT);
      int sig = 0;
      sigwait(&stop, &sig);
      std::_Exit(0);
    }).detach();
    return RunClient(url, count, timeout_ms);
  }
  return Usage();
}
