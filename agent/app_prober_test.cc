// The agent's app-health side: gRPC health probes as the kubelet runs them, and the
// prober serving every probe kind on its own HTTP server, against real apps on
// loopback (an HttpServer, TCP listeners, a grpc.health.v1 server).
#include "agent/app_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/app_grpc_probe.h"
#include "common/http/http_server.h"
#include "common/metrics/registry.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/test_grpc_server.h"

namespace tandem::agent {
namespace {

// tandem-agent ignores SIGPIPE (PrepareProcess), so a probe that writes to an app that
// has already closed gets EPIPE; this test process does the same (under ASan's timing,
// HTTPS to a plaintext app died of SIGPIPE otherwise).
[[maybe_unused]] const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A grpc.health.v1 server whose answers the test sets; Check can also be held until
// the test releases it (or the server shuts down), to let a probe time out.
class FakeHealth final : public grpc::health::v1::Health::Service {
 public:
  void Set(const std::string& service, HealthCheckResponse::ServingStatus status) {
    absl::MutexLock lock(&mu_);
    statuses_[service] = status;
  }
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  void Shutdown() { Hold(false); }

  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest* request,
                     HealthCheckResponse* response) override {
    absl::MutexLock lock(&mu_);
    auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_; };
    mu_.Await(absl::Condition(&released));
    auto it = statuses_.find(request->service());
    // As grpc's own health service: an unknown service is NOT_FOUND.
    if (it == statuses_.end())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown");
    response->set_status(it->second);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, HealthCheckResponse::ServingStatus> statuses_
      ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
};

using HealthServer = testing::TestGrpcServer<FakeHealth>;

std::unique_ptr<HealthServer> StartHealthServer() {
  absl::StatusOr<std::unique_ptr<HealthServer>> server =
      HealthServer::Start("127.0.0.1:0", grpc::InsecureServerCredentials());
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// A TCP socket on 127.0.0.1 port 0: listening (connections complete in the backlog
// and are never accepted, so an HTTP probe waits for an answer that never comes), or
// only bound (so nothing can listen on its port while a test expects it refused).
// Closing a listener resets the connections waiting in its backlog.
class LoopbackPort {
 public:
  explicit LoopbackPort(bool listening) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    if (listening) {
      EXPECT_EQ(listen(fd_, 16), 0);
    }
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackPort() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

AppProbeSpec GrpcSpec(int port, std::string service = "") {
  AppProbeSpec spec;
  spec.kind = AppProbeSpec::Kind::kGrpc;
  spec.host = "127.0.0.1";
  spec.port = static_cast<uint16_t>(port);
  spec.grpc_service = std::move(service);
  return spec;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

TEST(GrpcProbeTest, SucceedsOnlyWhenServing) {
  std::unique_ptr<HealthServer> app = StartHealthServer();
  ASSERT_NE(app, nullptr);
  app->service()->Set("", HealthCheckResponse::SERVING);
  app->service()->Set("shop.Cart", HealthCheckResponse::NOT_SERVING);
  app->service()->Set("shop.Unknown", HealthCheckResponse::UNKNOWN);

  AppProbeResult result = RunGrpcProbe(GrpcSpec(app->port()), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kSuccess) << result.detail;

  result = RunGrpcProbe(GrpcSpec(app->port(), "shop.Cart"), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kNotServing);
  EXPECT_EQ(result.detail, "Health/Check: NOT_SERVING");
  result = RunGrpcProbe(GrpcSpec(app->port(), "shop.Unknown"), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kNotServing);
  EXPECT_EQ(result.detail, "Health/Check: UNKNOWN");

  result = RunGrpcProbe(GrpcSpec(app->port(), "shop.Absent"), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kGrpcError);
  EXPECT_EQ(result.detail, "Health/Check: NOT_FOUND: unknown");

  app->service()->Set("", HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(RunGrpcProbe(GrpcSpec(app->port()), Soon()).outcome,
            AppProbeOutcome::kNotServing);
}

TEST(GrpcProbeTest, FailsWhenNothingListens) {
  LoopbackPort bound(/*listening=*/false);
  AppProbeResult result = RunGrpcProbe(GrpcSpec(bound.port()), Soon());
  EXPECT_EQ(result.outcome, AppProbeOutcome::kGrpcError);
  EXPECT_EQ(result.detail.substr(0, 26), "Health/Check: UNAVAILABLE:") << result.detail;
}

TEST(GrpcProbeTest, TimesOutAtTheDeadline) {
  std::unique_ptr<HealthServer> app = StartHealthServer();
  ASSERT_NE(app, nullptr);
  app->service()->Set("", HealthCheckResponse::SERVING);
  app->service()->Hold(true);
  AppProbeResult result =
      RunGrpcProbe(GrpcSpec(app->port()), absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(result.outcome, AppProbeOutcome::kTimeout);
  EXPECT_EQ(result.detail, "Health/Check: timed out");
  app->service()->Hold(false);
}

// The apps of one pod, and the agent's prober serving their probes on an HttpServer.
class AppProberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<http::HttpServer>> app = http::HttpServer::Create({});
    ASSERT_TRUE(app.ok()) << app.status();
    web_ = *std::move(app);
    web_->Handle("/ready", [](const http::HttpRequest&) {
      return http::HttpResponse{200, "text/plain", "ready\n"};
    });
    web_->Handle("/broken", [](const http::HttpRequest&) {
      return http::HttpResponse{500, "text/plain", "broken\n"};
    });
    ASSERT_TRUE(web_->Start().ok());
    grpc_app_ = StartHealthServer();
    ASSERT_NE(grpc_app_, nullptr);
    grpc_app_->service()->Set("", HealthCheckResponse::SERVING);
  }

  // Parses `json` as TANDEM_APP_PROBES would be and serves it.
  void StartProber(const std::string& json) {
    absl::StatusOr<AppProbeTable> table = ParseAppProbes(json);
    ASSERT_TRUE(table.ok()) << table.status();
    prober_ = std::make_unique<AppProber>(*std::move(table), &registry_);
    http::HttpServer::Options options;
    options.deferred_timeout = prober_->max_timeout() + absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
        http::HttpServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    health_ = *std::move(server);
    prober_->Serve(*health_);
    prober_->Start();
    ASSERT_TRUE(health_->Start().ok());
  }

  void TearDown() override {
    if (health_) health_->Stop();  // before the prober its handlers call
    prober_.reset();
  }

  testing::HttpResult Get(const std::string& path) {
    return testing::HttpCall(health_->port(), "GET", path);
  }

  double Probes(const std::string& container, const std::string& probe,
                const std::string& result) {
    return registry_
        .GetCounter(
            "tandem_agent_app_probe_total",
            "App probes run for the kubelet on the app-health port, by container, "
            "probe and result.",
            {{"container", container}, {"probe", probe}, {"result", result}})
        .Value();
  }

  // Runs Check() on `path` and returns a notification and the result it will hold.
  struct Pending {
    absl::Notification done;
    AppProbeResult result;
  };
  std::unique_ptr<Pending> CheckInBackground(const std::string& path) {
    auto pending = std::make_unique<Pending>();
    EXPECT_TRUE(prober_->Check(path, [p = pending.get()](const AppProbeResult& result) {
      p->result = result;
      p->done.Notify();
    }));
    return pending;
  }

  metrics::Registry registry_;
  std::unique_ptr<http::HttpServer> web_;
  std::unique_ptr<HealthServer> grpc_app_;
  std::unique_ptr<AppProber> prober_;
  std::unique_ptr<http::HttpServer> health_;
};

TEST_F(AppProberTest, AnswersEachProbeKindAsTheKubeletExpects) {
  LoopbackPort tcp_app(/*listening=*/true);
  LoopbackPort closed(/*listening=*/false);
  StartProber(absl::StrCat(R"({
    "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": )",
                           web_->port(),
                           R"(, "scheme": "HTTP"}, "timeoutSeconds": 1},
    "/app-health/web/livez": {"httpGet": {"path": "/broken", "port": )",
                           web_->port(),
                           R"(}},
    "/app-health/db/readyz": {"tcpSocket": {"port": )",
                           tcp_app.port(), R"(}},
    "/app-health/db/livez": {"tcpSocket": {"port": )",
                           closed.port(), R"(}},
    "/app-health/rpc/startupz": {"grpc": {"port": )",
                           grpc_app_->port(),
                           R"(, "service": ""}}
  })"));
  ASSERT_EQ(prober_->size(), 5u);

  struct Case {
    std::string path;
    int status;
    std::string body;
  };
  for (const Case& c : std::vector<Case>{
           {"/app-health/web/readyz", 200, "ok\n"},
           {"/app-health/web/livez", 503, "http_status: HTTP 500\n"},
           {"/app-health/db/readyz", 200, "ok\n"},
           {"/app-health/db/livez", 503,
            absl::StrCat("refused: connect 127.0.0.1:", closed.port(),
                         ": Connection refused\n")},
           {"/app-health/rpc/startupz", 200, "ok\n"},
           {"/app-health/web/startupz", 404, "not found\n"},  // no such probe
           {"/app-health/web", 404, "not found\n"},
       }) {
    testing::HttpResult got = Get(c.path);
    EXPECT_EQ(got.status, c.status) << c.path << ": " << got.body;
    EXPECT_EQ(got.body, c.body) << c.path;
  }

  grpc_app_->service()->Set("", HealthCheckResponse::NOT_SERVING);
  testing::HttpResult got = Get("/app-health/rpc/startupz");
  EXPECT_EQ(got.status, 503);
  EXPECT_EQ(got.body, "not_serving: Health/Check: NOT_SERVING\n");

  EXPECT_EQ(Probes("web", "readyz", "success"), 1);
  EXPECT_EQ(Probes("web", "livez", "http_status"), 1);
  EXPECT_EQ(Probes("db", "livez", "refused"), 1);
  EXPECT_EQ(Probes("rpc", "startupz", "success"), 1);
  EXPECT_EQ(Probes("rpc", "startupz", "not_serving"), 1);
  EXPECT_EQ(Probes("rpc", "startupz", "timeout"), 0);  // every result has a series
}

TEST_F(AppProberTest, AnswersATimedOutProbeWith503) {
  LoopbackPort mute(/*listening=*/true);  // accepts in the backlog, never answers
  StartProber(absl::StrCat(R"({"/app-health/web/readyz": {"httpGet": {"port": )",
                           mute.port(), R"(}, "timeoutSeconds": 1}})"));
  testing::HttpResult got = Get("/app-health/web/readyz");
  EXPECT_EQ(got.status, 503);
  EXPECT_EQ(got.body, "timeout: no answer: timed out\n");
  EXPECT_EQ(Probes("web", "readyz", "timeout"), 1);
}

TEST_F(AppProberTest, SlowProbeStallsNeitherOtherPathsNorTheServer) {
  LoopbackPort mute(/*listening=*/true);
  LoopbackPort tcp_app(/*listening=*/true);
  StartProber(absl::StrCat(R"({"/app-health/slow/readyz": {"httpGet": {"port": )",
                           mute.port(),
                           R"(}, "timeoutSeconds": 600},
          "/app-health/fast/readyz": {"tcpSocket": {"port": )",
                           tcp_app.port(), R"(}}})"));

  std::unique_ptr<Pending> slow = CheckInBackground("/app-health/slow/readyz");
  std::unique_ptr<Pending> joined = CheckInBackground("/app-health/slow/readyz");
  std::unique_ptr<Pending> fast = CheckInBackground("/app-health/fast/readyz");
  fast->done.WaitForNotification();
  EXPECT_TRUE(fast->result.ok()) << fast->result.detail;
  // The HTTP server answers while the slow probe still waits for its app.
  EXPECT_EQ(Get("/app-health/fast/readyz").status, 200);
  EXPECT_FALSE(slow->done.HasBeenNotified());

  mute.Close();  // resets the probe's connection: the slow probe ends now
  slow->done.WaitForNotification();
  joined->done.WaitForNotification();
  EXPECT_EQ(slow->result.outcome, AppProbeOutcome::kBadResponse) << slow->result.detail;
  EXPECT_EQ(joined->result.detail, slow->result.detail);
  // Both requests arrived while one probe ran (or before it started): one probe.
  EXPECT_EQ(Probes("slow", "readyz", "bad_response"), 1);
}

TEST_F(AppProberTest, StopAnswersWhoStillWaits) {
  LoopbackPort tcp_app(/*listening=*/true);
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(absl::StrCat(
      R"({"/app-health/a/livez": {"tcpSocket": {"port": )", tcp_app.port(), "}}}"));
  ASSERT_TRUE(table.ok()) << table.status();
  prober_ = std::make_unique<AppProber>(*std::move(table), &registry_);
  // Not started: the request waits for a worker that never comes.
  std::unique_ptr<Pending> waiting = CheckInBackground("/app-health/a/livez");
  EXPECT_FALSE(prober_->Check("/app-health/a/readyz", [](const AppProbeResult&) {
    ADD_FAILURE() << "called for an unknown path";
  }));
  prober_->Stop();
  ASSERT_TRUE(waiting->done.HasBeenNotified());
  EXPECT_EQ(waiting->result.outcome, AppProbeOutcome::kStopping);
  std::unique_ptr<Pending> late = CheckInBackground("/app-health/a/livez");
  ASSERT_TRUE(late->done.HasBeenNotified());
  EXPECT_EQ(late->result.outcome, AppProbeOutcome::kStopping);
}

}  // namespace
}  // namespace tandem::agent
