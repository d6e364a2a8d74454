// In-process tests of the proxy pair over loopback with real sockets and real TLS.
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tandem/mesh_policy.pb.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/traffic.h"
#include "tests/support/pki_test_util.h"

namespace tandem::proxy {
namespace {

using pki::testing::MakeRoot;
using pki::testing::MakeWorkload;
using tandem::testing::EchoServer;

constexpr char kClientId[] = "spiffe://cluster.local/ns/a/sa/client";
constexpr char kServerId[] = "spiffe://cluster.local/ns/b/sa/server";

WorkloadSecretPem ToPem(const pki::WorkloadCredentials& c) {
  return {*c.key.ToPem(), pki::Certificate::ChainToPem(c.chain), c.bundle.ToPem()};
}

int Connect(int port) { return tandem::testing::ConnectLoopback(port); }

// Writes `data` and reads the same number of bytes back; "" on any failure.
std::string RoundTrip(int fd, const std::string& data) {
  if (send(fd, data.data(), data.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(data.size())) {
    return "";
  }
  std::string out(data.size(), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n <= 0) return "";
    got += n;
  }
  return out;
}

// `size` bytes that change along the stream (byte i is (i * multiplier) >> shift), so a
// chunk lost, repeated or reordered on the way shows in the comparison.
std::string PatternBytes(size_t size, size_t multiplier, int shift) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * multiplier) >> shift);
  return bytes;
}

// Sends all of `data` on `fd` from a thread, as fast as the socket takes it (bounded:
// gives up after 5 s without progress), then half-closes if asked. `data` must outlive
// the thread.
std::thread SendInBackground(int fd, const std::string& data, bool half_close) {
  return std::thread([fd, &data, half_close] {
    size_t off = 0;
    while (off < data.size()) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 5000) <= 0) break;
      ssize_t w = send(fd, data.data() + off, std::min<size_t>(data.size() - off, 100000),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w <= 0 && errno != EAGAIN) break;
      if (w > 0) off += w;
    }
    if (half_close) shutdown(fd, SHUT_WR);
  });
}

// Reads from `fd` until it has `limit` bytes, the peer ends the stream (sets *eof if
// given), an error, or 5 s of silence; sleeps `pause` after each read (a slow reader).
std::string Receive(int fd, size_t limit, absl::Duration pause, bool* eof) {
  std::string received;
  char buf[65536];
  while (received.size() < limit) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    ssize_t n = read(fd, buf, std::min(sizeof(buf), limit - received.size()));
    if (n == 0 && eof != nullptr) *eof = true;
    if (n <= 0) break;
    received.append(buf, n);
    absl::SleepFor(pause);
  }
  return received;
}

std::string EchoOnce(int port, const std::string& data) {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string out = RoundTrip(fd, data);
  close(fd);
  return out;
}

// One proxy configured for tests: listeners on `host` (127.0.0.1 or [::1]) at port 0,
// fixed destinations, 2 workers; sets the ports they got.
std::unique_ptr<Proxy> StartProxyOn(const std::string& host, const std::string& extra_json,
                                    int* outbound_port, int* inbound_port) {
  std::string json = absl::StrCat(
      "{\"outbound_address\": \"", host, ":0\", \"inbound_address\": \"", host,
      ":0\", \"workers\": 2, \"socket_mark\": 0, \"handshake_timeout_ms\": 1000",
      extra_json, "}");
  absl::StatusOr<ProxyOptions> options = ParseProxyConfig(json);
  EXPECT_TRUE(options.ok()) << options.status() << json;
  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(*options);
  EXPECT_TRUE(proxy.ok());
  EXPECT_TRUE((*proxy)->Start().ok());
  *outbound_port = (*proxy)->options().outbound.port();
  *inbound_port = (*proxy)->options().inbound.port();
  return *std::move(proxy);
}

std::unique_ptr<Proxy> StartProxy(const std::string& extra_json, int* outbound_port,
                                  int* inbound_port) {
  return StartProxyOn("127.0.0.1", extra_json, outbound_port, inbound_port);
}

bool HasIpv6Loopback() {
  int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  bool ok = bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(probe);
  return ok;
}

class ProxyPairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = std::make_unique<pki::CertificateAuthority>(MakeRoot());
    echo_ = std::make_unique<EchoServer>();
    int unused;
    server_ =
        StartProxy(absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_->port(),
                                "\"", server_extra_),
                   &unused, &server_inbound_);
    client_ = StartProxy(absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                                      server_inbound_, "\"", client_extra_),
                         &client_outbound_, &unused);
    ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
    ASSERT_TRUE(client_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    echo_->Stop();
  }
  double Metric(Proxy& p, const std::string& sample) {
    return tandem::testing::MetricValue(p.RenderMetrics(), sample);
  }

  std::string server_extra_;
  std::string client_extra_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<Proxy> server_, client_;
  int server_inbound_ = 0, client_outbound_ = 0;
};

TEST_F(ProxyPairTest, EchoesThroughMutualTls) {
  EXPECT_EQ(EchoOnce(client_outbound_, "hello mesh"), "hello mesh");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_connections_closed_total{direction=\"inbound\","
                      "mode=\"mtls\"}") == 1;
      },
      absl::Seconds(5)));
  EXPECT_EQ(Metric(*client_,
                   "tandem_proxy_connections_opened_total{direction=\"outbound\","
                   "mode=\"mtls\"}"),
            1);
}

// Returns the value of the one `family` sample whose labels contain every one of
// `labels` (each `name="value"`), or -1 when none or several match.
double IstioSample(const std::string& exposition, const std::string& family,
                   const std::vector<std::string>& labels) {
  double value = -1;
  int matches = 0;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(family + "{", 0) != 0) continue;
    bool all = true;
    for (const std::string& label : labels) {
      all = all && line.find(label) != std::string::npos;
    }
    if (!all) continue;
    ++matches;
    value = std::stod(line.substr(line.rfind(' ') + 1));
  }
  return matches == 1 ? value : -1;
}

TEST_F(ProxyPairTest, ReportsIstioTcpMetricsWithBothPrincipalsOnEachSide) {
  EXPECT_EQ(EchoOnce(client_outbound_, "hello mesh"), "hello mesh");
  ASSERT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_connections_closed_total{direction=\"inbound\","
                      "mode=\"mtls\"}") == 1 &&
               Metric(*client_,
                      "tandem_proxy_connections_closed_total{direction=\"outbound\","
                      "mode=\"mtls\"}") == 1;
      },
      absl::Seconds(5)));
  const std::vector<std::string> principals = {
      absl::StrCat("source_principal=\"", kClientId, "\""),
      absl::StrCat("destination_principal=\"", kServerId, "\"")};
  auto with = [&](std::vector<std::string> labels) {
    labels.insert(labels.end(), principals.begin(), principals.end());
    return labels;
  };
  const std::string client = client_->RenderMetrics();
  const std::vector<std::string> source = with(
      {"reporter=\"source\"", "destination_workload=\"server\"",
       "destination_workload_namespace=\"b\"", "connection_security_policy=\"unknown\"",
       "response_flags=\"-\"", "request_protocol=\"tcp\""});
  EXPECT_EQ(IstioSample(client, "istio_tcp_connections_opened_total", source), 1) << client;
  EXPECT_EQ(IstioSample(client, "istio_tcp_connections_closed_total", source), 1) << client;
  EXPECT_EQ(IstioSample(client, "istio_tcp_received_bytes_total", source), 10) << client;
  EXPECT_EQ(IstioSample(client, "istio_tcp_sent_bytes_total", source), 10) << client;
  EXPECT_EQ(IstioSample(client, "istio_tcp_connections_opened_total",
                        {"reporter=\"destination\""}),
            -1)
      << client;

  const std::string server = server_->RenderMetrics();
  const std::vector<std::string> destination =
      with({"reporter=\"destination\"", "source_workload=\"client\"",
            "source_workload_namespace=\"a\"",
            "connection_security_policy=\"mutual_tls\""});
  EXPECT_EQ(IstioSample(server, "istio_tcp_connections_opened_total", destination), 1)
      << server;
  EXPECT_EQ(IstioSample(server, "istio_tcp_received_bytes_total", destination), 10)
      << server;
  EXPECT_EQ(IstioSample(server, "istio_tcp_connections_opened_total",
                        {"reporter=\"source\""}),
            -1)
      << server;
}

TEST_F(ProxyPairTest, CarriesVerifiedTrafficUnderLoad) {
  tandem::testing::TrafficReport r = tandem::testing::RunEchoTraffic(
      client_outbound_, absl::Seconds(1), 4, 3, 20000, /*min_short_per_worker=*/3);
  EXPECT_GE(r.short_ok, 12);
  EXPECT_EQ(r.short_failed, 0) << (r.errors.empty() ? "" : r.errors.front());
  EXPECT_EQ(r.long_failed, 0);
}

TEST_F(ProxyPairTest, ResumesSessionsBetweenProxies) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(EchoOnce(client_outbound_, "x"), "x");
  EXPECT_GE(Metric(*client_, "tandem_proxy_tls_resumed_total"), 1);
}

TEST_F(ProxyPairTest, ResumesConcurrentConnectionsWithTheTicketsOfEarlierOnes) {
  // Each handshake, full or resumed, leaves two tickets: after one full and two
  // resumed handshakes four are cached, one for each of four connections at once.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(EchoOnce(client_outbound_, "x"), "x");
  int fds[4];
  for (int& fd : fds) {
    fd = Connect(client_outbound_);
    ASSERT_GE(fd, 0);
  }
  for (int fd : fds) {
    EXPECT_EQ(RoundTrip(fd, "y"), "y");
    close(fd);
  }
  EXPECT_EQ(Metric(*client_, "tandem_proxy_tls_resumed_total"), 6);
}

TEST_F(ProxyPairTest, PropagatesHalfCloseBothWays) {
  int fd = Connect(client_outbound_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(RoundTrip(fd, "before"), "before");
  // We half-close; the echo server sees EOF, half-closes back; we must read EOF while
  // our own write side is closed and the connection still works for reading.
  ASSERT_EQ(send(fd, "tail", 4, MSG_NOSIGNAL), 4);
  shutdown(fd, SHUT_WR);
  std::string rest;
  char buf[64];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) rest.append(buf, n);
  EXPECT_EQ(n, 0) << "expected a clean EOF";
  EXPECT_EQ(rest, "tail");
  close(fd);
}

TEST_F(ProxyPairTest, DeliversBulkDataBeforeTheHalfCloseThatFollowsIt) {
  // TLS records leave in batches (the socket BIO gathers them): the FIN that follows
  // the last batch must not overtake it. We read slowly, so the way back stays full
  // (more is sent than the sockets on the way hold) and the proxies see the echo
  // server's FIN while their TLS sockets are full and records wait in the BIO.
  int fd = Connect(client_outbound_);
  ASSERT_GE(fd, 0);
  std::string sent = PatternBytes(16 << 20, 131, 7);
  std::thread writer = SendInBackground(fd, sent, /*half_close=*/true);
  bool eof = false;
  std::string received = Receive(fd, sent.size() + 1, absl::Milliseconds(1), &eof);
  writer.join();
  close(fd);
  EXPECT_TRUE(eof) << "expected a clean EOF after the data";
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "bytes changed on the way";
}

// Returns the largest value of a "min default max" sysctl such as tcp_rmem, or 0.
size_t SysctlMax(const char* path) {
  std::ifstream in(path);
  size_t min = 0, def = 0, max = 0;
  in >> min >> def >> max;
  return max;
}

TEST_F(ProxyPairTest, BoundsBufferingWhenTheReaderIsSlow) {
  // The echo server writes back everything; we never read. Writes must stall once the
  // proxies' bounded buffers and the kernel socket buffers are full, instead of the
  // proxies buffering without limit. The kernel's share is what autotuning may grow
  // to: 3 loopback connections on the way there and back, 2 sockets each, each up to
  // tcp_wmem's and tcp_rmem's maxima (32 MiB of receive buffer here: a fixed 64 MiB
  // bound failed once under load, at 75 MB).
  const size_t kernel = 3 * 2 *
                        (SysctlMax("/proc/sys/net/ipv4/tcp_wmem") +
                         SysctlMax("/proc/sys/net/ipv4/tcp_rmem"));
  ASSERT_GT(kernel, 0u) << "cannot read the TCP buffer sysctls";
  const size_t bound = kernel + (8u << 20);  // the proxies' buffers and the echo app's
  int fd = Connect(client_outbound_);
  ASSERT_GE(fd, 0);
  std::string chunk(64 * 1024, 'z');
  size_t written = 0;
  while (written < bound + (64u << 20)) {  // bounded: past `bound` we have our answer
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 500) <= 0) break;  // stalled: backpressure reached us
    ssize_t w = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w <= 0) break;
    written += w;
  }
  EXPECT_LT(written, bound) << "wrote " << written << " bytes without stalling";
  EXPECT_GT(written, 0u);
  close(fd);
}

// Buffers of an odd size smaller than a TLS record: on both proxies, records and
// socket reads keep ending at the ring's wrap-around.
class SmallBufferPairTest : public ProxyPairTest {
 protected:
  SmallBufferPairTest() { server_extra_ = client_extra_ = ", \"buffer_bytes\": 5003"; }
};

TEST_F(SmallBufferPairTest, DeliversBulkDataIntactAcrossWrapArounds) {
  int fd = Connect(client_outbound_);
  ASSERT_GE(fd, 0);
  std::string sent = PatternBytes(4 << 20, 7919, 8);
  // Write and read at once: the echo path holds far less than 4 MiB.
  std::thread writer = SendInBackground(fd, sent, /*half_close=*/false);
  std::string received = Receive(fd, sent.size(), absl::ZeroDuration(), nullptr);
  writer.join();
  close(fd);
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "bytes changed on the way";
}

// Buffers larger than a loopback TCP segment (64 KiB less headers): a write of more
// than one segment sends the whole segments at once and keeps the partial one for as
// long as the source has more.
class LargeBufferPairTest : public ProxyPairTest {
 protected:
  LargeBufferPairTest() { server_extra_ = client_extra_ = ", \"buffer_bytes\": 200000"; }
};

TEST_F(LargeBufferPairTest, DeliversThePartialSegmentOfAWriteWithoutAnEndOfStream) {
  // One write of 2.3 loopback segments, most likely read at once: the partial segment
  // kept back must leave on the next pass when nothing joins it, with no FIN or later
  // bytes to push it (Receive gives up after 5 s without data).
  int fd = Connect(client_outbound_);
  ASSERT_GE(fd, 0);
  std::string sent = PatternBytes(150000, 104729, 9);
  ASSERT_EQ(send(fd, sent.data(), sent.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(sent.size()));
  std::string received = Receive(fd, sent.size(), absl::ZeroDuration(), nullptr);
  close(fd);
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "bytes changed on the way";
}

TEST_F(ProxyPairTest, RefusesPeerFromAnotherCa) {
  pki::CertificateAuthority other = MakeRoot("other");
  pki::WorkloadCredentials stranger = MakeWorkload(other, kClientId);
  // The stranger trusts our root, so only the server's check can refuse it.
  stranger.bundle = *pki::TrustBundle::FromPem(ca_->root().ToPem());
  ASSERT_FALSE(client_->tls().UpdateSecret(ToPem(stranger)).ok());  // validated first
  stranger.bundle =
      *pki::TrustBundle::FromPem(other.root().ToPem() + ca_->root().ToPem());
  ASSERT_TRUE(client_->tls().UpdateSecret(ToPem(stranger)).ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"unknown_ca\"}") == 1;
      },
      absl::Seconds(5)));
}

// A certificate that expired is useless (every peer refuses it): the proxy stops
// offering it, refuses mTLS and reports not ready until a new one arrives. (That a
// client refuses an expired server certificate: InteropTest below.)
TEST_F(ProxyPairTest, RefusesMtlsAndIsNotReadyOnceItsOwnCertificateExpired) {
  absl::Time then = absl::Now() - absl::Hours(3);
  pki::CertificateAuthority old_ca = MakeRoot("old", then);
  pki::WorkloadCredentials creds = MakeWorkload(old_ca, kServerId, absl::Hours(1), then);
  creds.bundle = *pki::TrustBundle::FromPem(old_ca.root().ToPem() + ca_->root().ToPem());
  ASSERT_FALSE(server_->tls().UpdateSecret(ToPem(creds)).ok())
      << "an expired secret must be refused at install";
  // A certificate that expires 3 s after it is made (room for a slow install).
  pki::WorkloadCredentials short_lived =
      MakeWorkload(*ca_, kServerId, absl::Seconds(63), absl::Now() - absl::Seconds(60));
  ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(short_lived)).ok());
  ASSERT_TRUE(
      tandem::testing::WaitFor([&] { return !server_->ready(); }, absl::Seconds(10)))
      << "the certificate's own lifetime passed";
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"no_certificate\"}") >= 1;
      },
      absl::Seconds(5)));
  ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
  EXPECT_TRUE(server_->ready());
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "x");
}

TEST_F(ProxyPairTest, HotSwapKeepsOpenConnectionsAndUsesNewCertForNewOnes) {
  int fd = Connect(client_outbound_);
  ASSERT_EQ(RoundTrip(fd, "one"), "one");
  std::string old_serial = server_->tls().Current()->leaf.SerialHex();
  ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
  EXPECT_NE(server_->tls().Current()->leaf.SerialHex(), old_serial);
  EXPECT_EQ(RoundTrip(fd, "two"), "two") << "open connection survived the swap";
  EXPECT_EQ(EchoOnce(client_outbound_, "three"), "three");
  // A bad secret is refused and the good one stays.
  WorkloadSecretPem bad = ToPem(MakeWorkload(*ca_, kServerId));
  bad.private_key = *pki::PrivateKey::GenerateP256()->ToPem();
  EXPECT_FALSE(server_->tls().UpdateSecret(bad).ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "four"), "four");
  EXPECT_EQ(Metric(*server_, "tandem_proxy_secret_updates_total{result=\"refused\"}"), 1);
  close(fd);
}

TEST_F(ProxyPairTest, ExportsTheLifetimeOfTheCertificateInForce) {
  // TandemCertificateNearExpiry (deploy/observability/alerts.yaml) reads both ends.
  pki::WorkloadCredentials creds = MakeWorkload(*ca_, kServerId, absl::Hours(2));
  ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(creds)).ok());
  const pki::Certificate& leaf = creds.chain.front();
  EXPECT_EQ(Metric(*server_, "tandem_proxy_certificate_not_before_timestamp_seconds"),
            absl::ToUnixSeconds(leaf.not_before()));
  EXPECT_EQ(Metric(*server_, "tandem_proxy_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(leaf.not_after()));
  EXPECT_GE(leaf.not_after() - leaf.not_before(), absl::Hours(2));
}

// A control-plane policy whose only rule is an allow-list on `port`.
policy::v1::WorkloadPolicy AllowOnly(int port, const std::string& identity) {
  policy::v1::WorkloadPolicy policy;
  config::InboundPort* rule = policy.add_inbound_ports();
  rule->set_port(port);
  rule->add_allowed_identities(identity);
  return policy;
}

TEST_F(ProxyPairTest, PolicySwapDeniesNewConnectionsOfAPeerThatWasAllowed) {
  int open_fd = Connect(client_outbound_);
  ASSERT_EQ(RoundTrip(open_fd, "before"), "before");

  ASSERT_TRUE(server_
                  ->ApplyPolicy(
                      AllowOnly(echo_->port(), "spiffe://cluster.local/ns/other/*"), "v2")
                  .ok());
  EXPECT_EQ(server_->policy()->version(), "v2");
  EXPECT_EQ(EchoOnce(client_outbound_, "denied"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"not_authorized\"}") == 1;
      },
      absl::Seconds(5)));
  // The open connection keeps the policy it was accepted under.
  EXPECT_EQ(RoundTrip(open_fd, "still open"), "still open");

  ASSERT_TRUE(server_->ApplyPolicy(AllowOnly(echo_->port(), kClientId), "v3").ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "allowed again"), "allowed again");
  EXPECT_EQ(Metric(*server_, "tandem_proxy_policy_updates_total{result=\"accepted\"}"),
            2);
  EXPECT_EQ(Metric(*server_,
                   "tandem_proxy_policy_info{source=\"control plane\","
                   "version=\"v3\"}"),
            1);
  close(open_fd);
}

TEST_F(ProxyPairTest, RefusedPolicyKeepsTheOneInForce) {
  ASSERT_TRUE(server_->ApplyPolicy(AllowOnly(echo_->port(), kClientId), "v2").ok());
  absl::Status refused = server_->ApplyPolicy(
      AllowOnly(echo_->port(), "spiffe://elsewhere.org/ns/a/sa/b"), "v3");
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("no roots for trust domain"), std::string::npos)
      << refused;
  EXPECT_EQ(server_->policy()->version(), "v2");
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "x");
  EXPECT_EQ(Metric(*server_, "tandem_proxy_policy_updates_total{result=\"refused\"}"), 1);
}

TEST_F(ProxyPairTest, RevocationClosesTheRevokedPeersOpenConnectionsOnly) {
  constexpr char kOtherId[] = "spiffe://cluster.local/ns/a/sa/other";
  int other_outbound, unused;
  std::unique_ptr<Proxy> other = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", server_inbound_,
                   "\""),
      &other_outbound, &unused);
  ASSERT_TRUE(other->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kOtherId))).ok());
  int revoked_fd = Connect(client_outbound_);
  int kept_fd = Connect(other_outbound);
  ASSERT_EQ(RoundTrip(revoked_fd, "a"), "a");
  ASSERT_EQ(RoundTrip(kept_fd, "b"), "b");

  policy::v1::WorkloadPolicy policy;
  policy::v1::Revocation* revocation = policy.add_revocations();
  revocation->set_spiffe_id(kClientId);
  revocation->set_expires_unix_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  revocation->set_reason("compromised");
  revocation->set_close_open_connections(true);
  ASSERT_TRUE(server_->ApplyPolicy(policy, "v2").ok());

  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] { return Metric(*server_, "tandem_proxy_connections_revoked_total") == 1; },
      absl::Seconds(5)));
  EXPECT_EQ(RoundTrip(revoked_fd, "gone"), "");
  EXPECT_EQ(RoundTrip(kept_fd, "still flowing"), "still flowing");
  // New connections of the revoked peer are refused at the handshake.
  EXPECT_EQ(EchoOnce(client_outbound_, "new"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"revoked\"}") == 1;
      },
      absl::Seconds(5)));
  EXPECT_EQ(EchoOnce(other_outbound, "other"), "other");
  close(revoked_fd);
  close(kept_fd);
}

TEST_F(ProxyPairTest, ClientRefusesARevokedServerCertificateBySerial) {
  policy::v1::WorkloadPolicy policy;
  policy::v1::Revocation* revocation = policy.add_revocations();
  revocation->set_serial_hex(server_->tls().Current()->leaf.SerialHex());
  revocation->set_expires_unix_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  ASSERT_TRUE(client_->ApplyPolicy(policy, "v2").ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*client_,
                      "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                      "reason=\"revoked\"}") == 1;
      },
      absl::Seconds(5)));
  // The server's next certificate has another serial: traffic flows again.
  ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "y"), "y");
}

class ServerIdentityTest : public ProxyPairTest {
 protected:
  void SetUp() override {
    // Expected identity for the server's address is someone else.
    client_extra_ =
        ", \"expected_identities\": [{\"destination\": \"127.0.0.1:PORT\", "
        "\"spiffe_id\": \"spiffe://cluster.local/ns/b/sa/other\"}]";
    expected_port_placeholder_ = true;
    ProxyPairTestSetUp();
  }
  void ProxyPairTestSetUp() {
    ca_ = std::make_unique<pki::CertificateAuthority>(MakeRoot());
    echo_ = std::make_unique<EchoServer>();
    int unused;
    server_ = StartProxy(
        absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_->port(), "\""),
        &unused, &server_inbound_);
    std::string extra = client_extra_;
    extra.replace(extra.find("PORT"), 4, std::to_string(server_inbound_));
    client_ = StartProxy(absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                                      server_inbound_, "\"", extra),
                         &client_outbound_, &unused);
    ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
    ASSERT_TRUE(client_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  }
  bool expected_port_placeholder_ = false;
};

TEST_F(ServerIdentityTest, RefusesServerWithWrongSpiffeId) {
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*client_,
                      "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                      "reason=\"wrong_server\"}") == 1;
      },
      absl::Seconds(5)));
}

class AllowListTest : public ProxyPairTest {
 protected:
  void SetUp() override {
    server_extra_ =
        ", \"inbound_ports\": [{\"port\": ECHO, \"allowed_identities\": "
        "[\"spiffe://cluster.local/ns/other/*\"]}]";
    ca_ = std::make_unique<pki::CertificateAuthority>(MakeRoot());
    echo_ = std::make_unique<EchoServer>();
    std::string extra = server_extra_;
    extra.replace(extra.find("ECHO"), 4, std::to_string(echo_->port()));
    int unused;
    server_ = StartProxy(
        absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_->port(), "\"", extra),
        &unused, &server_inbound_);
    client_ = StartProxy(absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                                      server_inbound_, "\""),
                         &client_outbound_, &unused);
    ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
    ASSERT_TRUE(client_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  }
};

TEST_F(AllowListTest, RefusesPeerNotOnTheAllowList) {
  EXPECT_EQ(EchoOnce(client_outbound_, "x"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"not_authorized\"}") == 1;
      },
      absl::Seconds(5)));
}

TEST(ProxyModeTest, RefusesPlaintextInStrictAndPassesItInPermissive) {
  EchoServer echo;
  pki::CertificateAuthority ca = MakeRoot();
  for (const char* mode : {"STRICT", "PERMISSIVE"}) {
    int inbound, unused;
    std::unique_ptr<Proxy> proxy =
        StartProxy(absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo.port(),
                                "\", \"default_inbound_mode\": \"", mode, "\""),
                   &unused, &inbound);
    ASSERT_TRUE(proxy->tls().UpdateSecret(ToPem(MakeWorkload(ca, kServerId))).ok());
    std::string got = EchoOnce(inbound, "plain text");
    if (std::string(mode) == "STRICT") {
      EXPECT_EQ(got, "");
      EXPECT_EQ(tandem::testing::MetricValue(
                    proxy->RenderMetrics(),
                    "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                    "reason=\"plaintext_refused\"}"),
                1);
    } else {
      EXPECT_EQ(got, "plain text");
    }
  }
  echo.Stop();
}

// The same pair over ::1: IPv6 listeners, an IPv6 upstream, an IPv6 app.
TEST(Ipv6ProxyTest, EchoesThroughMutualTlsOverIpv6Loopback) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  pki::CertificateAuthority ca = MakeRoot();
  EchoServer echo(AF_INET6);
  int server_inbound, client_outbound, unused;
  std::unique_ptr<Proxy> server = StartProxyOn(
      "[::1]", absl::StrCat(", \"inbound_fixed_app\": \"[::1]:", echo.port(), "\""),
      &unused, &server_inbound);
  std::unique_ptr<Proxy> client = StartProxyOn(
      "[::1]",
      absl::StrCat(", \"outbound_fixed_destination\": \"[::1]:", server_inbound, "\""),
      &client_outbound, &unused);
  ASSERT_TRUE(server->tls().UpdateSecret(ToPem(MakeWorkload(ca, kServerId))).ok());
  ASSERT_TRUE(client->tls().UpdateSecret(ToPem(MakeWorkload(ca, kClientId))).ok());
  int fd = tandem::testing::ConnectLoopback(client_outbound, AF_INET6);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "hello over v6"), "hello over v6");
  close(fd);
  EXPECT_EQ(tandem::testing::MetricValue(
                client->RenderMetrics(),
                "tandem_proxy_connections_opened_total{direction=\"outbound\","
                "mode=\"mtls\"}"),
            1);
  EXPECT_EQ(tandem::testing::MetricValue(
                server->RenderMetrics(),
                "tandem_proxy_connections_opened_total{direction=\"inbound\","
                "mode=\"mtls\"}"),
            1);
  client.reset();
  server.reset();
  echo.Stop();
}

// Without a redirect the original destination of an IPv6 connection is the listener
// itself: relaying it would loop, so it is refused as malformed.
TEST(Ipv6ProxyTest, RefusesAnUnredirectedConnectionOnAnIpv6Listener) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  int outbound, unused;
  std::unique_ptr<Proxy> proxy =
      StartProxyOn("[::1]", ", \"mesh_cidrs\": [\"10.0.0.0/8\"]", &outbound, &unused);
  int fd = tandem::testing::ConnectLoopback(outbound, AF_INET6);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "x"), "");
  close(fd);
  EXPECT_EQ(tandem::testing::MetricValue(
                proxy->RenderMetrics(),
                "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                "reason=\"malformed\"}"),
            1);
}

TEST(Ipv6ProxyTest, RefusesPlaintextInStrictOverIpv6) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  EchoServer echo(AF_INET6);
  pki::CertificateAuthority ca = MakeRoot();
  int inbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxyOn(
      "[::1]", absl::StrCat(", \"inbound_fixed_app\": \"[::1]:", echo.port(), "\""),
      &unused, &inbound);
  ASSERT_TRUE(proxy->tls().UpdateSecret(ToPem(MakeWorkload(ca, kServerId))).ok());
  int fd = tandem::testing::ConnectLoopback(inbound, AF_INET6);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RoundTrip(fd, "plain text"), "");
  close(fd);
  EXPECT_EQ(tandem::testing::MetricValue(
                proxy->RenderMetrics(),
                "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                "reason=\"plaintext_refused\"}"),
            1);
  EXPECT_EQ(echo.connections(), 0);
  proxy.reset();
  echo.Stop();
}

TEST(ProxyModeTest, RefusesMtlsAndIsNotReadyWithoutCertificate) {
  EchoServer echo;
  int outbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", echo.port(), "\""),
      &outbound, &unused);
  EXPECT_FALSE(proxy->ready());
  EXPECT_EQ(tandem::testing::MetricValue(
                proxy->RenderMetrics(),
                "tandem_proxy_certificate_not_before_timestamp_seconds"),
            0);
  EXPECT_EQ(EchoOnce(outbound, "x"), "");
  EXPECT_EQ(tandem::testing::MetricValue(
                proxy->RenderMetrics(),
                "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                "reason=\"no_certificate\"}"),
            1);
  echo.Stop();
}

TEST(ProxyModeTest, PassesThroughDestinationsOutsideTheMesh) {
  EchoServer echo;
  int outbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", echo.port(),
                   "\", \"mesh_cidrs\": [\"10.0.0.0/8\"]"),
      &outbound, &unused);
  EXPECT_EQ(EchoOnce(outbound, "outside"), "outside");  // no certificate needed
  echo.Stop();
}

TEST(ProxyModeTest, ClosesAConnectionIdleLongerThanTheIdleTimeout) {
  EchoServer echo;
  int outbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", echo.port(),
                   "\", \"mesh_cidrs\": [\"10.0.0.0/8\"], \"idle_timeout_ms\": 300"),
      &outbound, &unused);
  int fd = Connect(outbound);
  ASSERT_EQ(RoundTrip(fd, "busy"), "busy");
  pollfd readable{fd, POLLIN, 0};
  ASSERT_EQ(poll(&readable, 1, 10000), 1) << "the idle connection was never closed";
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "closed with a FIN, not reset";
  close(fd);
  echo.Stop();
}

TEST(ProxyModeTest, ResetsTheAppWhenItsDestinationRefusesTheConnection) {
  // Bound but not listening: every connection to it is refused.
  int refusing = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(refusing, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(getsockname(refusing, reinterpret_cast<sockaddr*>(&address), &length), 0);
  int outbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                   ntohs(address.sin_port), "\", \"mesh_cidrs\": [\"10.0.0.0/8\"]"),
      &outbound, &unused);
  int fd = Connect(outbound);
  ASSERT_GE(fd, 0);
  pollfd readable{fd, POLLIN, 0};
  ASSERT_EQ(poll(&readable, 1, 10000), 1) << "the proxy neither reset nor closed";
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET) << "as a direct connection would have been";
  close(fd);
  const std::string failures =
      "tandem_proxy_upstream_connect_failures_total{direction=\"outbound\"}";
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return tandem::testing::MetricValue(proxy->RenderMetrics(), failures) == 1;
      },
      absl::Seconds(5)));
  close(refusing);
}

TEST(ProxyModeTest, EnforcesTheConnectionLimit) {
  EchoServer echo;
  int outbound, unused;
  std::unique_ptr<Proxy> proxy = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", echo.port(),
                   "\", \"mesh_cidrs\": [\"10.0.0.0/8\"], \"max_connections\": 2"),
      &outbound, &unused);
  int a = Connect(outbound), b = Connect(outbound);
  ASSERT_EQ(RoundTrip(a, "a"), "a");
  ASSERT_EQ(RoundTrip(b, "b"), "b");
  EXPECT_EQ(EchoOnce(outbound, "c"), "");
  EXPECT_EQ(tandem::testing::MetricValue(proxy->RenderMetrics(),
                                         "tandem_proxy_connections_over_limit_total"),
            1);
  close(a);
  close(b);
  EXPECT_TRUE(tandem::testing::WaitFor([&] { return EchoOnce(outbound, "d") == "d"; },
                                       absl::Seconds(5)));
  echo.Stop();
}

}  // namespace
}  // namespace tandem::proxy

namespace tandem::proxy {
namespace {

// Writes a workload's key, chain and bundle as PEM files under `dir`.
void WritePem(const pki::WorkloadCredentials& c, const std::string& dir,
              const std::string& name) {
  std::ofstream(dir + "/" + name + ".key") << *c.key.ToPem();
  std::ofstream(dir + "/" + name + ".crt") << pki::Certificate::ChainToPem(c.chain);
  std::ofstream(dir + "/" + name + "-ca.crt") << c.bundle.ToPem();
}

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-interop-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = std::make_unique<pki::CertificateAuthority>(MakeRoot());
    WritePem(MakeWorkload(*ca_, kServerId), dir_, "server");
    WritePem(MakeWorkload(*ca_, kClientId), dir_, "client");
    if (system("command -v openssl >/dev/null") != 0)
      GTEST_SKIP() << "openssl CLI missing";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Starts `openssl s_server -rev` (TLS 1.3) on a port of its choosing with
  // dir_/<name>.crt/.key, and sets *port once it accepts; null when it does not.
  std::unique_ptr<tandem::testing::Subprocess> StartOpensslServer(
      const std::string& name, std::vector<std::string> extra_args, int* port) {
    std::vector<std::string> argv = {"/usr/bin/openssl",
                                     "s_server",
                                     "-accept",
                                     "127.0.0.1:0",
                                     "-cert",
                                     dir_ + "/" + name + ".crt",
                                     "-key",
                                     dir_ + "/" + name + ".key",
                                     "-CAfile",
                                     dir_ + "/" + name + "-ca.crt",
                                     "-rev",
                                     "-tls1_3"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto server = std::make_unique<tandem::testing::Subprocess>(
        "openssl s_server", argv, dir_ + "/s_server-" + name + ".log");
    if (!server->Start()) return nullptr;
    // It prints "ACCEPT 127.0.0.1:PORT" once listening.
    *port = tandem::testing::WaitForLoggedPort(*server, "ACCEPT ");
    EXPECT_GT(*port, 0) << "openssl s_server did not come up";
    return *port > 0 ? std::move(server) : nullptr;
  }
  std::string dir_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
};

TEST_F(InteropTest, OurClientTalksToOpensslServerRequiringClientCerts) {
  int port = 0;
  std::unique_ptr<tandem::testing::Subprocess> server =
      StartOpensslServer("server", {"-Verify", "1", "-verify_return_error"}, &port);
  ASSERT_TRUE(server != nullptr);
  int outbound, unused;
  std::unique_ptr<Proxy> client = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", port, "\""),
      &outbound, &unused);
  ASSERT_TRUE(client->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  int fd = Connect(outbound);
  ASSERT_GE(fd, 0);
  // s_server -rev answers each line reversed ("tandem" -> "mednat").
  ASSERT_EQ(send(fd, "tandem\n", 7, MSG_NOSIGNAL), 7);
  std::string got;
  char buf[512];
  while (got.find("mednat") == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, n);
  }
  close(fd);
  EXPECT_NE(got.find("mednat"), std::string::npos) << got << server->Log();
}

// Only a foreign server can still present an expired certificate (ours stop offering
// theirs): the client must refuse it and count why.
TEST_F(InteropTest, OurClientRefusesAServerWithAnExpiredCertificate) {
  WritePem(MakeWorkload(*ca_, kServerId, absl::Hours(1), absl::Now() - absl::Hours(3)),
           dir_, "expired");
  int port = 0;
  std::unique_ptr<tandem::testing::Subprocess> server =
      StartOpensslServer("expired", {}, &port);
  ASSERT_TRUE(server != nullptr);
  int outbound, unused;
  std::unique_ptr<Proxy> client = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", port, "\""),
      &outbound, &unused);
  ASSERT_TRUE(client->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  EXPECT_EQ(EchoOnce(outbound, "tandem\n"), "");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return tandem::testing::MetricValue(
                   client->RenderMetrics(),
                   "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                   "reason=\"expired\"}") >= 1;
      },
      absl::Seconds(5)));
}

TEST_F(InteropTest, OpensslClientWithClientCertTalksToOurServer) {
  EchoServer echo;
  int inbound, unused;
  std::unique_ptr<Proxy> server =
      StartProxy(absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo.port(), "\""),
                 &unused, &inbound);
  ASSERT_TRUE(server->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
  auto s_client = [&](const std::string& extra) {
    std::string cmd = absl::StrCat(
        "echo interop-ok | timeout 4 openssl s_client -quiet -connect 127.0.0.1:",
        inbound, " -CAfile ", dir_, "/client-ca.crt ", extra, " 2>/dev/null");
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[256];
    while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    if (p != nullptr) pclose(p);
    return out;
  };
  EXPECT_EQ(
      s_client(absl::StrCat("-cert ", dir_, "/client.crt -key ", dir_, "/client.key")),
      "interop-ok\n");
  EXPECT_EQ(s_client(""), "") << "no client certificate must be refused";
  EXPECT_EQ(s_client(absl::StrCat("-tls1_2 -cert ", dir_, "/client.crt -key ", dir_,
                                  "/client.key")),
            "")
      << "TLS 1.2 is refused unless configured";
  echo.Stop();
}

TEST_F(InteropTest, BinaryDrainsOnSigtermAndExits) {
  EchoServer echo;
  std::ofstream(dir_ + "/proxy.json") << absl::StrCat(
      "{\"outbound_address\": \"127.0.0.1:0\", \"inbound_address\": \"127.0.0.1:0\", "
      "\"metrics_address\": \"127.0.0.1:0\", \"admin_address\": \"127.0.0.1:0\", "
      "\"health_address\": \"127.0.0.1:0\", \"workers\": 1, \"socket_mark\": 0, ",
      "\"outbound_fixed_destination\": \"127.0.0.1:", echo.port(),
      "\", \"mesh_cidrs\": [\"10.0.0.0/8\"], \"drain_timeout_ms\": 60000, ",
      "\"access_log\": true, ", "\"cert_chain_file\": \"", dir_,
      "/server.crt\", \"private_key_file\": \"", dir_,
      "/server.key\", \"trust_bundle_file\": \"", dir_, "/server-ca.crt\"}");
  tandem::testing::Subprocess proxy(
      "tandem-proxy",
      {TANDEM_PROXY_BIN, "--config=" + dir_ + "/proxy.json", "--log-format=json"},
      dir_ + "/proxy.log");
  ASSERT_TRUE(proxy.Start());
  // The log line comes once the listener is bound: the first connect is accepted.
  int outbound = tandem::testing::WaitForListeningPort(proxy, "outbound");
  ASSERT_GT(outbound, 0) << "the proxy did not come up";
  int fd = Connect(outbound);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(RoundTrip(fd, "before"), "before");
  kill(proxy.pid(), SIGTERM);
  // Draining: no new connections, the open one still works.
  EXPECT_TRUE(tandem::testing::WaitFor([&] { return EchoOnce(outbound, "x").empty(); },
                                       absl::Seconds(5)));
  EXPECT_EQ(RoundTrip(fd, "during drain"), "during drain");
  close(fd);
  absl::Time closed = absl::Now();
  // Far below the 60 s drain deadline, however slow the machine.
  int status = proxy.Signal(0, absl::Seconds(30));  // wait for exit
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << proxy.Log();
  EXPECT_LT(absl::Now() - closed, absl::Seconds(30))
      << "exits once drained, not at deadline";
  EXPECT_NE(proxy.Log().find("\"cut_at_drain_deadline\":0"), std::string::npos)
      << proxy.Log();
  // The access log recorded the drained connection, with what it carried.
  EXPECT_NE(proxy.Log().find("\"bytes_from_downstream\":18,"), std::string::npos)
      << proxy.Log();
  EXPECT_NE(proxy.Log().find("\"close\":\"eof\""), std::string::npos) << proxy.Log();
  echo.Stop();
}

TEST(ProxyConfigFileTest, BinaryRefusesInvalidConfigNamingTheField) {
  char tmpl[] = "/tmp/tandem-badconfig-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/bad.json") << R"({"inbound_ports": [{"port": 70000}]})";
  tandem::testing::Subprocess proxy(
      "tandem-proxy", {TANDEM_PROXY_BIN, "--config=" + dir + "/bad.json"}, dir + "/log");
  ASSERT_TRUE(proxy.Start());
  int status = proxy.Signal(0, absl::Seconds(10));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(proxy.Log().find("inbound_ports[0].port"), std::string::npos) << proxy.Log();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::proxy

namespace tandem::proxy {
namespace {

}  // namespace
}  // namespace tandem::proxy

namespace tandem::proxy {
namespace {

// Port 0 is resolved once: every worker listens on the port the first one got, and a
// connection that was not redirected to the outbound listener (its destination is
// that very port) is refused rather than proxied to itself.
TEST(ProxyListenTest, WorkersShareTheResolvedPortAndTheLoopCheckUsesIt) {
  int outbound = 0, inbound = 0;
  std::unique_ptr<Proxy> proxy = StartProxy("", &outbound, &inbound);
  ASSERT_GT(outbound, 0);
  ASSERT_GT(inbound, 0);
  EXPECT_NE(outbound, inbound);
  EXPECT_EQ(proxy->options().outbound.text, absl::StrCat("127.0.0.1:", outbound));
  // Both workers' sockets are in the port's listen group, none elsewhere.
  std::ifstream tcp("/proc/net/tcp");
  int listeners = 0;
  char port_hex[8];
  std::snprintf(port_hex, sizeof(port_hex), ":%04X", outbound);
  for (std::string line; std::getline(tcp, line);) {
    if (line.find(std::string("0100007F") + port_hex + " 00000000:0000 0A") !=
        std::string::npos) {
      ++listeners;
    }
  }
  EXPECT_EQ(listeners, 2);
  int fd = Connect(outbound);
  ASSERT_GE(fd, 0);
  char byte;
  EXPECT_LE(read(fd, &byte, 1), 0) << "closed, not looped back into the proxy";
  close(fd);
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return tandem::testing::MetricValue(
                   proxy->RenderMetrics(),
                   "tandem_proxy_handshake_failures_total{direction=\"outbound\","
                   "reason=\"malformed\"}") == 1;
      },
      absl::Seconds(5)));
}

// Hostile peers: garbage and a stalled handshake are refused and counted, and the
// proxy keeps serving everyone else.
TEST_F(ProxyPairTest, RefusesGarbageAndSlowHandshakesAndKeepsServing) {
  int garbage = Connect(server_inbound_);
  std::string junk = "\x16\x03\x01" + std::string(200, '\xff');
  ASSERT_EQ(send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(junk.size()));
  // Answered with at most a TLS alert, then closed.
  char buf[256];
  ssize_t n, total = 0;
  while ((n = read(garbage, buf, sizeof(buf))) > 0) total += n;
  EXPECT_TRUE(n == 0 || errno == ECONNRESET) << "closed (FIN or RST), not timed out";
  EXPECT_LT(total, 64);
  close(garbage);
  int slow = Connect(server_inbound_);
  ASSERT_EQ(send(slow, "\x16", 1, MSG_NOSIGNAL), 1);  // then nothing: a slowloris
  EXPECT_EQ(EchoOnce(client_outbound_, "others fine"), "others fine");
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return Metric(*server_,
                      "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                      "reason=\"timeout\"}") == 1;
      },
      absl::Seconds(5)))
      << "the 1 s handshake timeout cuts the stalled handshake";
  EXPECT_GE(Metric(*server_,
                   "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                   "reason=\"tls_error\"}"),
            1);
  close(slow);
  EXPECT_EQ(EchoOnce(client_outbound_, "still fine"), "still fine");
}

}  // namespace
}  // namespace tandem::proxy

namespace tandem::proxy {
namespace {

// RSA where users have it: a root made by the openssl command-line tool over an RSA
// key (as an enterprise CA is), an RSA-2048 leaf key as Istio's agent makes by
// default, and tandem's own P-256 leaves, all in one mesh.
class RsaPairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> root_key = openssl_.GenerateKey("root", "RSA:3072");
    ASSERT_TRUE(root_key.ok()) << root_key.status();
    absl::StatusOr<std::string> root = openssl_.MakeRoot("root");
    ASSERT_TRUE(root.ok()) << root.status();
    absl::StatusOr<pki::CertificateAuthority> ca =
        pki::CertificateAuthority::FromPem(*root_key, *root);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::make_unique<pki::CertificateAuthority>(*std::move(ca));
    int unused;
    server_ = StartProxy(
        absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""),
        &unused, &server_inbound_);
    client_ = StartProxy(absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:",
                                      server_inbound_, "\""),
                         &client_outbound_, &unused);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    echo_.Stop();
  }
  // Returns the secret for `id` over an openssl-made RSA-2048 key, issued by the RSA
  // root; also writes <name>.key and <name>.crt.
  WorkloadSecretPem RsaSecret(const std::string& name, const std::string& id) {
    absl::StatusOr<std::string> key = openssl_.GenerateKey(name, "RSA:2048");
    absl::StatusOr<std::string> csr = openssl_.MakeCsr(name, id);
    EXPECT_TRUE(key.ok() && csr.ok()) << key.status() << csr.status();
    absl::StatusOr<pki::CertificateRequest> parsed =
        pki::CertificateRequest::FromPem(csr.value_or(""));
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<pki::Certificate> leaf =
        ca_->IssueWorkload(*parsed, *SpiffeId::Parse(id), absl::Hours(1), absl::Now());
    EXPECT_TRUE(leaf.ok()) << leaf.status();
    std::ofstream(openssl_.PathOf(name + ".crt")) << leaf->ToPem();
    return {*key, leaf->ToPem(), ca_->root().ToPem()};
  }

  tandem::testing::TempDir dir_{"tandem-rsa-pair"};
  tandem::testing::OpensslCli openssl_{dir_.path()};
  std::unique_ptr<pki::CertificateAuthority> ca_;
  EchoServer echo_;
  std::unique_ptr<Proxy> server_, client_;
  int server_inbound_ = 0, client_outbound_ = 0;
};

TEST_F(RsaPairTest, EchoesBetweenRsaAndP256LeavesUnderAnRsaRoot) {
  ASSERT_TRUE(server_->tls().UpdateSecret(RsaSecret("server", kServerId)).ok());
  ASSERT_TRUE(client_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kClientId))).ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "rsa server"), "rsa server");
  // Both ends RSA now: the server verifies an RSA-PSS CertificateVerify too.
  ASSERT_TRUE(client_->tls().UpdateSecret(RsaSecret("client", kClientId)).ok());
  EXPECT_EQ(EchoOnce(client_outbound_, "rsa both"), "rsa both");
}

TEST_F(RsaPairTest, SignsItsTls13HandshakeWithRsaPssAsOpensslSees) {
  ASSERT_TRUE(server_->tls().UpdateSecret(RsaSecret("server", kServerId)).ok());
  RsaSecret("client", kClientId);  // writes client.key and client.crt
  absl::StatusOr<std::string> out = openssl_.Run(absl::StrCat(
      "s_client -connect 127.0.0.1:", server_inbound_,
      " -CAfile root.crt -cert client.crt -key client.key -verify_return_error"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(out->find("Peer signature type: RSA-PSS"), std::string::npos) << *out;
  EXPECT_NE(out->find("New, TLSv1.3,"), std::string::npos) << *out;
  EXPECT_NE(out->find("Verify return code: 0 (ok)"), std::string::npos) << *out;
}

}  // namespace
}  // namespace tandem::proxy
