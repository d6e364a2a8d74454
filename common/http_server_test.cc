#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace tandem {
namespace {

std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    (void)!write(fd, request.data(), request.size());
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  }
  close(fd);
  return response;
}

TEST(HttpServerTest, ServesHandlersAndRefusesTheRest) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Handle("/hello", [](const HttpRequest& r) {
    return HttpResponse{200, "hi " + r.query};
  });
  (*server)->Start();
  int port = (*server)->port();
  std::string ok = Exchange(port, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(ok.find("200 OK"), std::string::npos);
  EXPECT_NE(ok.find("hi x=1"), std::string::npos);
  EXPECT_NE(Exchange(port, "GET /nope HTTP/1.1\r\n\r\n").find("404"), std::string::npos);
  EXPECT_NE(Exchange(port, "garbage\r\n\r\n").find("400"), std::string::npos);
  // Oversized headers: the server hangs up without answering.
  EXPECT_EQ(Exchange(port, "GET / HTTP/1.1\r\nX: " + std::string(9000, 'a')), "");
  (*server)->Stop();
}

TEST(HttpServerTest, RefusesBadListenAddress) {
  EXPECT_FALSE(HttpServer::Create("nowhere").ok());
  EXPECT_FALSE(HttpServer::Create("1.2.3:80").ok());
}

TEST(HttpServerTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace tandem
