#include "proxy/wait_ready.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxy/socket_address.h"

namespace tandem::proxy {
namespace {

// One GET; returns the status line ("HTTP/1.1 200 OK"), or the error.
absl::StatusOr<std::string> StatusLine(const SocketAddress& address,
                                       const std::string& path,
                                       absl::Duration io_timeout) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
  timeval tv = absl::ToTimeval(io_timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string line;
  absl::Status status;
  if (connect(fd, address.get(), address.length) != 0) {
    status = absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  } else {
    std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", address.text,
                                       "\r\nConnection: close\r\n\r\n");
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      status = absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
    char buffer[256];
    while (status.ok() && line.find("\r\n") == std::string::npos && line.size() < 256) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        status = absl::UnavailableError(n == 0 ? "no status line"
                                               : absl::StrCat("recv: ", strerror(errno)));
      } else {
        line.append(buffer, n);
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return line.substr(0, line.find("\r\n"));
}

}  // namespace

absl::Status WaitUntilReady(const WaitReadyOptions& options) {
  absl::StatusOr<SocketAddress> address = SocketAddress::Parse(options.address);
  if (!address.ok()) return address.status();
  const absl::Time deadline = absl::Now() + options.timeout;
  std::string last;
  while (true) {
    absl::StatusOr<std::string> line =
        StatusLine(*address, options.path, absl::Seconds(2));
    if (line.ok() && line->rfind("HTTP/1.", 0) == 0 && line->substr(8, 5) == " 200 ") {
      return absl::OkStatus();
    }
    last = line.ok() ? *line : std::string(line.status().message());
    if (absl::Now() + options.poll_interval > deadline) break;
    absl::SleepFor(options.poll_interval);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("http://", options.address, options.path, " not ready after ",
                   absl::FormatDuration(options.timeout), " (last: ", last, ")"));
}

}  // namespace tandem::proxy
