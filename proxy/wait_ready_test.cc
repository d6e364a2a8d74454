#include "proxy/wait_ready.h"

#include <atomic>

#include "common/http/http_server.h"
#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

std::unique_ptr<http::HttpServer> Server(std::atomic<int>* answers, int not_ready_first) {
  std::unique_ptr<http::HttpServer> server = *http::HttpServer::Create({});
  server->Handle("/healthz/ready", [answers, not_ready_first](const http::HttpRequest&) {
    int n = answers->fetch_add(1);
    return http::HttpResponse{n < not_ready_first ? 503 : 200, "text/plain", "x"};
  });
  EXPECT_TRUE(server->Start().ok());
  return server;
}

TEST(WaitReadyTest, ReturnsOnceTheProxyAnswersReady) {
  std::atomic<int> answers{0};
  std::unique_ptr<http::HttpServer> server = Server(&answers, 3);
  WaitReadyOptions options;
  options.address = "127.0.0.1:" + std::to_string(server->port());
  options.poll_interval = absl::Milliseconds(10);
  EXPECT_TRUE(WaitUntilReady(options).ok());
  EXPECT_EQ(answers.load(), 4);
}

TEST(WaitReadyTest, GivesUpAfterTheTimeoutSayingWhatItLastSaw) {
  std::atomic<int> answers{0};
  std::unique_ptr<http::HttpServer> server = Server(&answers, 1 << 30);
  WaitReadyOptions options;
  options.address = "127.0.0.1:" + std::to_string(server->port());
  options.timeout = absl::Milliseconds(200);
  options.poll_interval = absl::Milliseconds(10);
  absl::Status s = WaitUntilReady(options);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "http://" + options.address +
                             "/healthz/ready not ready after 200ms (last: HTTP/1.1 503 "
                             "Service Unavailable)");
}

TEST(WaitReadyTest, KeepsTryingWhileNothingListens) {
  uint16_t port;
  {
    std::atomic<int> answers{0};
    port = Server(&answers, 0)->port();  // closed again: nothing listens there now
  }
  WaitReadyOptions options;
  options.address = "127.0.0.1:" + std::to_string(port);
  options.timeout = absl::Milliseconds(100);
  options.poll_interval = absl::Milliseconds(10);
  absl::Status s = WaitUntilReady(options);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("(last: connect: Connection refused)"),
            absl::string_view::npos)
      << s;
}

TEST(WaitReadyTest, RefusesABadAddress) {
  WaitReadyOptions options;
  options.address = "localhost";
  EXPECT_EQ(WaitUntilReady(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::proxy
