#include "common/tcp_connect.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"

namespace tandem {
namespace {

// A listening socket on 127.0.0.1, port 0.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(ConnectTcpTest, ReturnsABlockingCloseOnExecSocketWithIoTimeouts) {
  Listener listener;
  absl::StatusOr<int> fd = ConnectTcp("127.0.0.1", std::to_string(listener.port()),
                                      absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(fcntl(*fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  timeval tv{};
  socklen_t len = sizeof(tv);
  getsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
  EXPECT_GT(tv.tv_sec + tv.tv_usec, 0) << "reads are bounded by the deadline";
  close(*fd);
}

TEST(ConnectTcpTest, NamesTheAddressAndTheReasonWhenRefused) {
  testing::ClosedPort closed;
  const std::string port = std::to_string(closed.port());
  absl::StatusOr<int> fd = ConnectTcp("127.0.0.1", port, absl::Now() + absl::Seconds(10));
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fd.status().message(),
            absl::StrCat("cannot connect to 127.0.0.1:", port, ": Connection refused"));
  // IPv6 literals are named in brackets (whatever this host says about ::1).
  fd = ConnectTcp("::1", port, absl::Now() + absl::Seconds(10));
  EXPECT_TRUE(absl::StartsWith(fd.status().message(),
                               absl::StrCat("cannot connect to [::1]:", port, ": ")))
      << fd.status();
}

TEST(ConnectTcpTest, RefusesWhatTheResolverRefuses) {
  absl::StatusOr<int> fd =
      ConnectTcp("127.0.0.1", "not-a-port", absl::Now() + absl::Seconds(10));
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StartsWith(fd.status().message(), "resolving 127.0.0.1: "))
      << fd.status();
}

}  // namespace
}  // namespace tandem
