// The mesh with its three real processes on loopback: tandem-ca, two tandem-agents and
// two tandem-proxies, certificates living 3 seconds and rotating under load.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http/http_server.h"
#include "gtest/gtest.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/openssl_cli.h"

namespace tandem::testing {
namespace {

TEST_F(MeshTest, RotatesCertificatesUnderLoadWithoutDroppingAConnection) {
  StartMesh();
  double before =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  // At least 26 connections per worker however slow the machine: short_ok > 100 below
  // is a count, not a rate.
  TrafficReport report =
      RunEchoTraffic(client_.outbound, absl::Seconds(30),
                     /*short_workers=*/4, /*long_connections=*/3,
                     /*payload_bytes=*/4096, /*min_short_per_worker=*/26);
  double rotations =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}") - before;
  double server_rotations =
      Metric(server_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  std::cerr << "short connections ok: " << report.short_ok
            << ", long-lived rounds ok: " << report.long_rounds_ok
            << ", bytes verified: " << report.bytes_verified
            << ", client rotations during load: " << rotations
            << ", server rotations: " << server_rotations << "\n";
  EXPECT_EQ(report.short_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_EQ(report.long_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_GT(report.short_ok, 100);
  EXPECT_GT(report.long_rounds_ok, 3 * 100) << "long-lived connections carried traffic";
  EXPECT_GE(rotations, 8) << "3 s certificates must have rotated repeatedly in 30 s";
  EXPECT_EQ(Metric(client_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
}

TEST_F(MeshTest, ProxyKeepsServingWhenTheAgentDiesAndIsReFedWhenItReturns) {
  StartMesh();
  client_.agent->Kill();
  TrafficReport during = RunEchoTraffic(client_.outbound, absl::Seconds(1), 2, 1);
  EXPECT_EQ(during.short_failed, 0);
  double before =
      Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
  ASSERT_TRUE(client_.agent->Start());
  client_.agent_metrics = WaitForListeningPort(*client_.agent, "metrics");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(client_, "tandem_proxy_secret_updates_total{result=\"accepted\"}") >
               before;
      },
      absl::Seconds(20)));
}

TEST_F(MeshTest, CaIdentityComesFromTheTokenNotTheRequest) {
  StartMesh();
  std::string certs = HttpGet(client_.admin, "/certs");
  EXPECT_NE(certs.find("spiffe://cluster.local/ns/shop/sa/client"), std::string::npos)
      << certs;
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// Every process's /metrics must be valid Prometheus text by Prometheus's own linter.
TEST_F(MeshTest, MetricsEndpointsPassPromtool) {
  if (system("command -v promtool >/dev/null") != 0) GTEST_SKIP() << "promtool missing";
  StartMesh();
  ASSERT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(300), 1, 1).short_failed,
            0);
  for (auto [name, port, page] :
       {std::tuple{"proxy", client_.metrics, "/metrics"},
        std::tuple{"proxy-merged", client_.metrics, "/stats/prometheus"},
        std::tuple{"agent", client_.agent_metrics, "/metrics"},
        std::tuple{"ca", ca_metrics_, "/metrics"}}) {
    std::string text = HttpGet(port, page);
    ASSERT_FALSE(text.empty()) << name;
    std::string path = dir_ + "/" + name + ".prom";
    std::ofstream(path) << text;
    std::string cmd = "promtool check metrics < " + path + " > " + path + ".lint 2>&1";
    int rc = system(cmd.c_str());
    std::ifstream lint(path + ".lint");
    std::string findings((std::istreambuf_iterator<char>(lint)), {});
    EXPECT_EQ(rc, 0) << name << ":\n" << findings;
  }
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// Root rotation with an overlap bundle: every workload trusts the old and the next
// root before the CA switches; the CA then signs with the next root while still
// publishing the old one. Traffic through the pair must not notice.
TEST_F(MeshTest, RotatesTheRootWithAnOverlapBundleWithoutDroppingConnections) {
  // The operator prepares the next root first (the CA creates it on first start).
  StartCa("ca-next");
  std::string next_root = HttpGet(ca_metrics_, "/trust-bundle");
  ca_.reset();
  StartCa("ca");
  std::string old_root = HttpGet(ca_metrics_, "/trust-bundle");
  ASSERT_NE(old_root, next_root);
  Write(dir_ + "/old-root.pem", old_root);
  Write(dir_ + "/overlap.pem", old_root + next_root);
  Write(dir_ + "/ca-root.pem", old_root + next_root);  // agents accept either CA
  extra_agent_flag_ = "--extra-roots=" + dir_ + "/overlap.pem";
  client_.name = "client";
  server_.name = "server";
  StartPod(server_, "shop", "server",
           absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""));
  StartPod(client_, "shop", "client",
           absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", server_.inbound,
                        "\""));
  ASSERT_TRUE(
      WaitFor([&] { return Ready(client_) && Ready(server_); }, absl::Seconds(20)));

  TrafficReport report;
  std::thread traffic([&] {
    report = RunEchoTraffic(client_.outbound, absl::Seconds(12), 2, 2, 4096, 11);
  });
  absl::SleepFor(absl::Seconds(3));
  ca_.reset();                                                        // the old CA goes,
  StartCa("ca-next", dir_ + "/old-root.pem", /*keep_ca_root=*/true);  // the next serves
  traffic.join();

  EXPECT_EQ(report.short_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_EQ(report.long_failed, 0)
      << (report.errors.empty() ? "" : report.errors.front());
  EXPECT_GT(report.short_ok, 20);
  // Both workloads renewed from the next root (3 s certificates, 9 s under it).
  EXPECT_GE(MetricValue(HttpGet(ca_metrics_, "/metrics"),
                        "tandem_ca_certificates_issued_total"),
            4);
  EXPECT_EQ(Metric(client_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
  EXPECT_EQ(Metric(server_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// With the real processes: pods that start before the CA are not ready and refuse
// mTLS; the agents retry and the mesh comes up when the CA appears.
TEST_F(MeshTest, PodsWaitNotReadyForACaThatStartsLate) {
  StartCa();    // creates the root the pods are configured with...
  ca_.reset();  // ...and is gone before they start
  client_.name = "client";
  server_.name = "server";
  StartPod(server_, "shop", "server",
           absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""));
  StartPod(client_, "shop", "client",
           absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", server_.inbound,
                        "\""));
  ASSERT_TRUE(WaitFor([&] { return !HttpGet(client_.metrics, "/metrics").empty(); },
                      absl::Seconds(20)));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(Ready(client_));
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0).short_ok, 0);
  EXPECT_GT(Metric(client_,
                   "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                   "reason=\"no_certificate\"}"),
            0);
  StartCa();
  ASSERT_TRUE(
      WaitFor([&] { return Ready(client_) && Ready(server_); }, absl::Seconds(20)));
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Seconds(1), 2, 1).short_failed, 0);
}

// The CA dies mid-life: renewals fail and are counted, the current certificates stay
// in force (3 s lifetime, renewed at about 1.5 s, so at least 1.3 s left when the CA
// dies; 0.8 s of traffic), and renewals resume when the CA returns.
TEST_F(MeshTest, KeepsServingOnCurrentCertificatesWhileTheCaIsDown) {
  StartMesh();
  ca_.reset();
  TrafficReport during = RunEchoTraffic(client_.outbound, absl::Milliseconds(800), 2, 1);
  EXPECT_EQ(during.short_failed, 0)
      << (during.errors.empty() ? "" : during.errors.front());
  EXPECT_GT(during.short_ok, 0);
  // Both sides must have a certificate from the returned CA before the last traffic:
  // one whose certificate ran out while the CA was down refuses until then (seen once
  // under ASan: the server's expired 7 ms before its renewal arrived).
  const std::string accepted = "tandem_proxy_secret_updates_total{result=\"accepted\"}";
  double client_before = Metric(client_, accepted);
  double server_before = Metric(server_, accepted);
  StartCa();
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(client_, accepted) > client_before &&
               Metric(server_, accepted) > server_before;
      },
      absl::Seconds(20)));
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Seconds(1), 2, 1).short_failed, 0);
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// Writes `text` to `path` in one rename, as a ConfigMap update lands.
void WriteAtomically(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

// Root rotation as an operation (the runbook in docs/controlplane.md), with tandem-ca
// running throughout: its root dir is laid out as the kubelet lays out a Secret volume
// (files are symlinks through ..data, which one rename swaps), its extra roots and the
// agents' extra roots are files, and the traffic never stops. At the end the agents
// trust the next root alone, for the CA's own port too.
TEST_F(MeshTest, RotatesTheRootByTheRunbookWithoutRestartingTheCa) {
  OpensslCli openssl(dir_);
  std::string old_root, next_root;
  for (auto [name, pem] : {std::pair{"old", &old_root}, std::pair{"next", &next_root}}) {
    ASSERT_TRUE(openssl.GenerateKey(name, "EC:P-256").ok());
    absl::StatusOr<std::string> cert = openssl.MakeRoot(name);
    ASSERT_TRUE(cert.ok()) << cert.status();
    *pem = *cert;
  }
  const std::string secret = dir_ + "/secret";
  int versions = 0;
  // Publishes <name>.key/.crt as the Secret's next version.
  auto publish = [&](const std::string& name) {
    const std::string version = "..v" + std::to_string(++versions);
    std::filesystem::create_directory(secret + "/" + version);
    std::filesystem::copy_file(openssl.PathOf(name + ".key"),
                               secret + "/" + version + "/ca-key.pem");
    std::filesystem::copy_file(openssl.PathOf(name + ".crt"),
                               secret + "/" + version + "/ca-cert.pem");
    for (const char* file : {"ca-key.pem", "ca-cert.pem"}) {
      std::filesystem::permissions(secret + "/" + version + "/" + file,
                                   std::filesystem::perms::owner_read);
    }
    std::filesystem::create_symlink(version, secret + "/..data_tmp");
    std::filesystem::rename(secret + "/..data_tmp", secret + "/..data");
  };
  ASSERT_TRUE(std::filesystem::create_directory(secret));
  for (const char* file : {"ca-key.pem", "ca-cert.pem"}) {
    std::filesystem::create_symlink(std::string("..data/") + file, secret + "/" + file);
  }
  publish("old");
  const std::string ca_extra = dir_ + "/ca-extra-roots.pem";
  const std::string agent_extra = dir_ + "/agent-extra-roots.pem";
  WriteAtomically(ca_extra, "");
  WriteAtomically(agent_extra, "");
  mesh_root_dir_ = "secret";
  extra_ca_args_ = {"--root-dir-mode=secret-volume", "--extra-roots=" + ca_extra,
                    "--root-reload-interval=100ms"};
  extra_agent_flag_ = "--extra-roots=" + agent_extra;
  StartMesh();
  ASSERT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), old_root);

  // Traffic for the whole operation, in rounds (bounded: at most 120 of ~0.5 s).
  TrafficReport total;
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    for (int round = 0; round < 120 && !stop.load(); ++round) {
      TrafficReport r = RunEchoTraffic(client_.outbound, absl::Milliseconds(500), 2, 1);
      total.short_ok += r.short_ok;
      total.short_failed += r.short_failed;
      total.long_rounds_ok += r.long_rounds_ok;
      total.long_failed += r.long_failed;
      total.errors.insert(total.errors.end(), r.errors.begin(), r.errors.end());
    }
  });
  auto reloads = [&] {
    return MetricValue(HttpGet(ca_metrics_, "/metrics"),
                       "tandem_ca_root_reloads_total{result=\"accepted\"}");
  };
  const std::string accepted = "tandem_proxy_secret_updates_total{result=\"accepted\"}";
  // Waits one certificate lifetime, as a condition: two renewals of each workload, so
  // each holds a certificate issued after the last change.
  auto wait_one_lifetime = [&] {
    double client = Metric(client_, accepted), server = Metric(server_, accepted);
    return WaitFor(
        [&] {
          return Metric(client_, accepted) >= client + 2 &&
                 Metric(server_, accepted) >= server + 2;
        },
        absl::Seconds(30));
  };

  // 1. Add the next root to the bundle: tandem-ca publishes both (the one it signs
  //    with once), the agents accept chains to either.
  WriteAtomically(agent_extra, next_root);
  WriteAtomically(ca_extra, old_root + next_root);
  EXPECT_TRUE(WaitFor([&] { return reloads() == 1; }, absl::Seconds(10)));
  EXPECT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), old_root + next_root);
  EXPECT_TRUE(wait_one_lifetime());
  // 2. Switch signing: the Secret gets the next key and certificate.
  publish("next");
  EXPECT_TRUE(WaitFor([&] { return reloads() == 2; }, absl::Seconds(10)));
  EXPECT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), next_root + old_root);
  // 3. Wait one certificate lifetime: every workload now holds a next-root certificate.
  EXPECT_TRUE(wait_one_lifetime());
  // 4. Drop the old root.
  WriteAtomically(ca_extra, "");
  EXPECT_TRUE(WaitFor([&] { return reloads() == 3; }, absl::Seconds(10)));
  EXPECT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), next_root);
  EXPECT_TRUE(wait_one_lifetime());
  // 5. The agents' bundle becomes the next root alone, as the tandem-ca-root ConfigMap
  //    behind their --ca-root does once tandem-ca dropped the old root: they re-read
  //    it, reconnect trusting only the next root (the CA's port serves a certificate
  //    from it since step 2) and keep renewing.
  WriteAtomically(dir_ + "/ca-root.pem", next_root);
  WriteAtomically(agent_extra, "");
  EXPECT_TRUE(wait_one_lifetime());
  // A fresh agent trusting only the next root reaches the CA too.
  const std::string installed = "tandem_agent_rotations_total{result=\"success\"}";
  client_.agent->Kill();
  ASSERT_TRUE(client_.agent->Start());
  client_.agent_metrics = WaitForListeningPort(*client_.agent, "metrics");
  EXPECT_TRUE(
      WaitFor([&] { return AgentMetric(client_, installed) >= 2; }, absl::Seconds(20)))
      << client_.agent->LogSinceStart();
  stop = true;
  traffic.join();

  std::cerr << "short connections ok: " << total.short_ok
            << ", long-lived rounds ok: " << total.long_rounds_ok << "\n";
  EXPECT_EQ(total.short_failed, 0) << (total.errors.empty() ? "" : total.errors.front());
  EXPECT_EQ(total.long_failed, 0) << (total.errors.empty() ? "" : total.errors.front());
  EXPECT_GT(total.short_ok, 50);
  EXPECT_EQ(MetricValue(HttpGet(ca_metrics_, "/metrics"),
                        "tandem_ca_root_reloads_total{result=\"refused\"}"),
            0);
  EXPECT_EQ(Metric(client_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
  EXPECT_EQ(Metric(server_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 0);
  // The CA's own certificate followed the switch, and no agent failed to reach it.
  EXPECT_GE(MetricValue(HttpGet(ca_metrics_, "/metrics"),
                        "tandem_ca_serving_certificate_renewals_total{result=\"ok\"}"),
            1);
  EXPECT_EQ(AgentMetric(client_, "tandem_agent_rotation_failures_total{reason=\"ca\"}"),
            0)
      << client_.agent->Log();
  EXPECT_EQ(AgentMetric(server_, "tandem_agent_rotation_failures_total{reason=\"ca\"}"),
            0)
      << server_.agent->Log();
}

}  // namespace
}  // namespace tandem::testing

namespace tandem::testing {
namespace {

// GET with a 15 s read timeout (HttpGet's is 2 s): the merged page waits for its
// sources, up to 1 s each, on a machine that may be loaded.
std::string PatientGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[16384];
      for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) answer.append(buf, n);
    }
  }
  close(fd);
  size_t body = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return answer;
  return answer.substr(body + 4);
}

// One scrape per pod, with real processes: the client pod's proxy merges its agent's
// page and an app's page into /stats/prometheus; an app that stops answering, or
// answers too slowly, is left out and counted while the rest is served.
TEST_F(MeshTest, ProxyServesThePodsMergedMetricsAndSurvivesABrokenApp) {
  StartMesh();
  http::HttpServer::Options options;
  auto app = *http::HttpServer::Create(options);
  app->Handle("/stats", [](const http::HttpRequest&) {
    return http::HttpResponse{200, "text/plain",
                              "# TYPE app_orders_total counter\napp_orders_total 42\n"};
  });
  // Never answers: the proxy must give up on it, not wait.
  app->HandleDeferred("/hang",
                      [](const http::HttpRequest&, http::HttpServer::Responder) {});
  ASSERT_TRUE(app->Start().ok());
  const int app_port = app->port();
  auto restart_with_app = [&](const std::string& path) {
    StartProxy(client_,
               {"/usr/bin/env", absl::StrCat("TANDEM_APP_METRICS_PORT=", app_port),
                "TANDEM_APP_METRICS_PATH=" + path});
    ASSERT_TRUE(WaitFor([&] { return Ready(client_); }, absl::Seconds(20)));
  };
  restart_with_app("/stats");
  std::string merged = PatientGet(client_.metrics, "/stats/prometheus");
  EXPECT_NE(merged.find("\ntandem_proxy_ready 1\n"), std::string::npos) << merged;
  EXPECT_NE(merged.find("\ntandem_agent_certificate_state{"), std::string::npos)
      << merged;
  EXPECT_NE(merged.find("\napp_orders_total 42\n"), std::string::npos) << merged;
  // The proxy's own page stays its own.
  std::string own = HttpGet(client_.metrics, "/metrics");
  EXPECT_EQ(own.find("tandem_agent_"), std::string::npos) << own;
  EXPECT_EQ(own.find("app_orders_total"), std::string::npos) << own;

  restart_with_app("/hang");
  merged = PatientGet(client_.metrics, "/stats/prometheus");
  EXPECT_NE(merged.find("\ntandem_proxy_ready 1\n"), std::string::npos) << merged;
  EXPECT_NE(merged.find("\ntandem_agent_certificate_state{"), std::string::npos)
      << merged;
  EXPECT_GE(Metric(client_,
                   "tandem_proxy_metrics_merge_failures_total{reason=\"timeout\","
                   "source=\"app\"}"),
            1);

  app.reset();  // the port closes: connect is refused
  merged = PatientGet(client_.metrics, "/stats/prometheus");
  EXPECT_NE(merged.find("\ntandem_proxy_ready 1\n"), std::string::npos) << merged;
  EXPECT_GE(Metric(client_,
                   "tandem_proxy_metrics_merge_failures_total{reason=\"connect\","
                   "source=\"app\"}"),
            1);
  EXPECT_EQ(Metric(client_,
                   "tandem_proxy_metrics_merge_failures_total{reason=\"connect\","
                   "source=\"agent\"}"),
            0);
}

}  // namespace
}  // namespace tandem::testing
