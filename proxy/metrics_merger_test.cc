#include "proxy/metrics_merger.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/synchronization/notification.h"
#include "common/http/http_server.h"
#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"

namespace tandem::proxy {
namespace {

TEST(HttpResponseBodyTest, ReturnsTheBodyOfA200) {
  absl::StatusOr<std::string> body =
      HttpResponseBody("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nup 1\nx 2\n");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "up 1\nx 2\n");
  EXPECT_EQ(*HttpResponseBody("HTTP/1.0 200\r\n\r\n"), "");
}

TEST(HttpResponseBodyTest, RefusesEverythingElseNamingWhy) {
  struct Case {
    const char* response;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {"HTTP/1.1 404 Not Found\r\n\r\nnope", absl::StatusCode::kFailedPrecondition,
       "status 404"},
      {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
       absl::StatusCode::kInvalidArgument, "no end of the response headers"},
      {"SSH-2.0-OpenSSH\r\n\r\n", absl::StatusCode::kInvalidArgument,
       "not an HTTP/1.x status line"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", absl::StatusCode::kInvalidArgument,
       "not an HTTP/1.x status line"},
      {"HTTP/1.1 2000\r\n\r\n", absl::StatusCode::kInvalidArgument,
       "not an HTTP/1.x status line"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nup 1\n\r\n0\r\n\r\n",
       absl::StatusCode::kInvalidArgument, "a transfer-encoded body"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> body = HttpResponseBody(c.response);
    EXPECT_EQ(body.status().code(), c.code) << c.response;
    EXPECT_EQ(body.status().message(), c.message) << c.response;
  }
}

TEST(MergeExpositionsTest, GroupsEachFamilyOnceAcrossPages) {
  std::string proxy =
      "# HELP tandem_http_requests_total Requests.\n"
      "# TYPE tandem_http_requests_total counter\n"
      "tandem_http_requests_total{server=\"metrics\"} 3\n"
      "# HELP tandem_proxy_ready Ready.\n"
      "# TYPE tandem_proxy_ready gauge\n"
      "tandem_proxy_ready 1\n";
  std::string agent =
      "# HELP tandem_agent_up Up.\n"
      "# TYPE tandem_agent_up gauge\n"
      "tandem_agent_up 1\n"
      "# HELP tandem_http_requests_total Requests.\n"
      "# TYPE tandem_http_requests_total counter\n"
      "tandem_http_requests_total{server=\"agent\"} 5\n";
  std::string app =
      "app_untyped 7\n# TYPE app_total counter\napp_total 2\n# EOF\nafter 1\n";
  EXPECT_EQ(MergeExpositions({proxy, agent, app}),
            "# HELP tandem_http_requests_total Requests.\n"
            "# TYPE tandem_http_requests_total counter\n"
            "tandem_http_requests_total{server=\"metrics\"} 3\n"
            "tandem_http_requests_total{server=\"agent\"} 5\n"
            "# HELP tandem_proxy_ready Ready.\n"
            "# TYPE tandem_proxy_ready gauge\n"
            "tandem_proxy_ready 1\n"
            "# HELP tandem_agent_up Up.\n"
            "# TYPE tandem_agent_up gauge\n"
            "tandem_agent_up 1\n"
            "app_untyped 7\n"
            "# TYPE app_total counter\n"
            "app_total 2\n");
}

// A loopback page server: /metrics answers `page`; /slow never answers.
class PageServer {
 public:
  explicit PageServer(std::string page) {
    http::HttpServer::Options options;
    server_ = *http::HttpServer::Create(options);
    server_->Handle("/metrics", [page](const http::HttpRequest&) {
      return http::HttpResponse{200, "text/plain", page};
    });
    server_->Handle("/missing", [](const http::HttpRequest&) {
      return http::HttpResponse{404, "text/plain", "no\n"};
    });
    server_->HandleDeferred("/slow",
                            [](const http::HttpRequest&, http::HttpServer::Responder) {});
    EXPECT_TRUE(server_->Start().ok());
  }
  uint16_t port() const { return server_->port(); }

 private:
  std::unique_ptr<http::HttpServer> server_;
};

class MetricsMergerTest : public ::testing::Test {
 protected:
  // Serves one scrape and waits for its answer (the merger bounds it).
  std::string Scrape(MetricsMerger& merger, std::string own) {
    absl::Notification done;
    std::string body;
    merger.Serve(std::move(own), [&](http::HttpResponse response) {
      EXPECT_EQ(response.status, 200);
      body = response.body;
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return body;
  }
  std::string Failures() { return registry_.RenderPrometheus(); }

  metrics::Registry registry_;
};

TEST_F(MetricsMergerTest, AppendsEverySourcesPage) {
  PageServer agent("# TYPE tandem_agent_up gauge\ntandem_agent_up 1\n");
  PageServer app("app_requests_total 4\n");
  MetricsMerger::Options options;
  options.sources = {{"agent", agent.port(), "/metrics"},
                     {"app", app.port(), "/metrics"}};
  options.registry = &registry_;
  MetricsMerger merger(options);
  EXPECT_EQ(Scrape(merger, "# TYPE tandem_proxy_ready gauge\ntandem_proxy_ready 1\n"),
            "# TYPE tandem_proxy_ready gauge\ntandem_proxy_ready 1\n"
            "# TYPE tandem_agent_up gauge\ntandem_agent_up 1\n"
            "app_requests_total 4\n");
}

TEST_F(MetricsMergerTest, LeavesOutFailedAndSlowSourcesAndCountsThem) {
  PageServer up("up 1\n");
  tandem::testing::ClosedPort closed;
  MetricsMerger::Options options;
  options.sources = {{"down", static_cast<uint16_t>(closed.port()), "/metrics"},
                     {"slow", up.port(), "/slow"},
                     {"big", up.port(), "/metrics"}};
  options.timeout = absl::Milliseconds(300);
  options.max_bytes = 16;  // the 200 answer's headers alone are larger
  options.registry = &registry_;
  MetricsMerger merger(options);
  EXPECT_EQ(Scrape(merger, "own 1\n"), "own 1\n");
  std::string failures = Failures();
  for (const char* line : {"{reason=\"connect\",source=\"down\"} 1",
                           "{reason=\"timeout\",source=\"slow\"} 1",
                           "{reason=\"too_large\",source=\"big\"} 1"}) {
    EXPECT_NE(
        failures.find(std::string("tandem_proxy_metrics_merge_failures_total") + line),
        std::string::npos)
        << line << "\n"
        << failures;
  }
}

TEST_F(MetricsMergerTest, CountsANon200AsStatus) {
  PageServer up("up 1\n");
  MetricsMerger::Options options;
  options.sources = {{"app", up.port(), "/missing"}};
  options.registry = &registry_;
  MetricsMerger merger(options);
  EXPECT_EQ(Scrape(merger, "own 1\n"), "own 1\n");
  EXPECT_NE(Failures().find("tandem_proxy_metrics_merge_failures_total{reason=\"status\","
                            "source=\"app\"} 1"),
            std::string::npos)
      << Failures();
}

TEST_F(MetricsMergerTest, AnswersAtOnceWithOwnMetricsWhenTheQueueIsFull) {
  PageServer up("up 1\n");
  MetricsMerger::Options options;
  options.sources = {{"app", up.port(), "/metrics"}};
  options.max_queued = 0;  // every scrape finds the queue full
  options.registry = &registry_;
  MetricsMerger merger(options);
  for (int i = 0; i < 3; ++i) {
    bool answered = false;
    merger.Serve("own 1\n", [&](http::HttpResponse response) {
      EXPECT_EQ(response.body, "own 1\n");
      answered = true;
    });
    EXPECT_TRUE(answered);  // on the calling thread, before Serve returned
  }
  EXPECT_NE(
      Failures().find(
          "tandem_proxy_metrics_merge_failures_total{reason=\"busy\",source=\"app\"} 3"),
      std::string::npos)
      << Failures();
}

TEST(MergeExpositionsTest, PromtoolAcceptsAMergedPage) {
#ifndef TANDEM_PROMTOOL
  GTEST_SKIP() << "promtool not found at configure time (Debian package prometheus)";
#else
  metrics::Registry proxy, agent;
  proxy.GetCounter("tandem_http_requests_total", "Requests.", {{"server", "metrics"}})
      .Inc();
  proxy.GetGauge("tandem_proxy_ready", "Ready.").Set(1);
  agent.GetCounter("tandem_http_requests_total", "Requests.", {{"server", "agent"}})
      .Inc(2);
  agent.GetGauge("tandem_agent_up", "Up.").Set(1);
  std::string merged = MergeExpositions(
      {proxy.RenderPrometheus(), agent.RenderPrometheus(),
       "# HELP app_total App.\n# TYPE app_total counter\napp_total 3\n"});
  std::string path = ::testing::TempDir() + "/merged_" + std::to_string(getpid());
  std::ofstream(path + ".prom") << merged;
  std::string cmd = std::string(TANDEM_PROMTOOL) + " check metrics < " + path +
                    ".prom > " + path + ".out 2>&1";
  int rc = std::system(cmd.c_str());
  std::stringstream report;
  report << std::ifstream(path + ".out").rdbuf();
  std::remove((path + ".prom").c_str());
  std::remove((path + ".out").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 0) << report.str() << merged;
#endif
}

}  // namespace
}  // namespace tandem::proxy
