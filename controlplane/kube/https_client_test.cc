#include "controlplane/kube/https_client.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_https_server.h"

namespace tandem::controlplane {
namespace {

std::unique_ptr<HttpsClient> ClientFor(const FakeHttpsServer& server,
                                       absl::Duration timeout = absl::Seconds(5),
                                       const std::string& server_name = "") {
  absl::StatusOr<std::unique_ptr<HttpsClient>> client = HttpsClient::Create(
      {absl::StrCat("127.0.0.1:", server.port()), server.ca_pem(), server_name, timeout});
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

TEST(HttpsClientTest, PostsAndReadsContentLengthAndChunkedBodies) {
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([](const FakeHttpsRequest& request) {
        return FakeHttpsReply{201,
                              absl::StrCat(request.method, " ", request.path, " ",
                                           request.authorization, " ", request.body),
                              /*chunked=*/request.path == "/chunked"};
      });
  std::unique_ptr<HttpsClient> client = ClientFor(*server);
  for (const char* path : {"/plain", "/chunked"}) {
    absl::StatusOr<HttpsResponse> response =
        client->Post(path, "application/json", "{}", {{"Authorization", "Bearer t"}});
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 201);
    EXPECT_EQ(response->body, absl::StrCat("POST ", path, " Bearer t {}"));
  }
  EXPECT_EQ(server->requests(), 2);
}

TEST(HttpsClientTest, ServesConcurrentCallersFromOneClient) {
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([](const FakeHttpsRequest& request) {
        return FakeHttpsReply{200, request.body};
      });
  std::unique_ptr<HttpsClient> client = ClientFor(*server);
  constexpr int kThreads = 4, kEach = 3;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string body = absl::StrCat(t, "-", i);
        absl::StatusOr<HttpsResponse> r = client->Post("/", "text/plain", body, {});
        if (r.ok() && r->body == body) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
}

TEST(HttpsClientTest, RefusesServerOutsideTheConfiguredRoots) {
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([](const FakeHttpsRequest&) { return FakeHttpsReply{}; });
  std::unique_ptr<FakeHttpsServer> other =
      *FakeHttpsServer::Create([](const FakeHttpsRequest&) { return FakeHttpsReply{}; });
  HttpsClient::Options options;
  options.address = absl::StrCat("127.0.0.1:", server->port());
  options.ca_pem = other->ca_pem();
  std::unique_ptr<HttpsClient> client = *HttpsClient::Create(options);
  absl::StatusOr<HttpsResponse> response = client->Post("/", "text/plain", "", {});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(response.status().message()).find("certificate"),
            std::string::npos)
      << response.status();
  EXPECT_EQ(server->requests(), 0);
}

TEST(HttpsClientTest, ChecksTheServerNameAgainstItsCertificate) {
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([](const FakeHttpsRequest&) { return FakeHttpsReply{}; });
  EXPECT_TRUE(ClientFor(*server, absl::Seconds(5), "kubernetes.default.svc")
                  ->Post("/", "text/plain", "", {})
                  .ok());
  EXPECT_EQ(ClientFor(*server, absl::Seconds(5), "evil.example.com")
                ->Post("/", "text/plain", "", {})
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ClientFor(*server, absl::Seconds(5), "10.0.0.1")
                ->Post("/", "text/plain", "", {})
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST(HttpsClientTest, GivesUpOnASilentServerAtTheDeadline) {
  // std:: primitives rather than absl::Notification: TSan sees through them (Debian's
  // Abseil is uninstrumented).
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([&](const FakeHttpsRequest&) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
        return FakeHttpsReply{};
      });
  std::unique_ptr<HttpsClient> client = ClientFor(*server, absl::Milliseconds(300));
  absl::Time start = absl::Now();
  absl::StatusOr<HttpsResponse> response = client->Post("/", "text/plain", "", {});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded)
      << response.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
}

TEST(HttpsClientTest, RefusesHeadersWithLineBreaks) {
  std::unique_ptr<FakeHttpsServer> server =
      *FakeHttpsServer::Create([](const FakeHttpsRequest&) { return FakeHttpsReply{}; });
  EXPECT_EQ(ClientFor(*server)
                ->Post("/", "text/plain", "", {{"X", "a\r\nInjected: yes"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpsClientTest, RefusesBadOptions) {
  for (auto [address, ca] : {std::pair{"nohost", "x"}, std::pair{"127.0.0.1:99999", "x"},
                             std::pair{"127.0.0.1:443", "not a certificate"}}) {
    HttpsClient::Options options;
    options.address = address;
    options.ca_pem = ca;
    EXPECT_EQ(HttpsClient::Create(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << address;
  }
}

}  // namespace
}  // namespace tandem::controlplane
