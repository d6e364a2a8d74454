// The agent against an in-process fake IstioCertificateService (gRPC+TLS on loopback)
// and the proxy's real SDS client over a Unix socket. gRPC code: no <openssl/...> here.
#include "agent/agent.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/ca_client.h"
#include "agent/sds_server.h"
#include "common/credential_request.h"
#include "common/metrics/registry.h"
#include "envoy/sds_service.grpc.pb.h"
#include "envoy/secret.pb.h"
#include "gtest/gtest.h"
#include "proxy/sds_client.h"
#include "tests/integration/recording_secret_sink.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/tcp_forwarder.h"
#include "tests/integration/temp_dir.h"
#include "tests/support/fake_ca_server.h"
#include "tests/support/test_ca.h"

namespace tandem::agent {
namespace {

using tandem::testing::WaitFor;

constexpr char kSpiffeId[] = "spiffe://cluster.local/ns/shop/sa/cart";
constexpr char kToken[] = "token-for-shop-cart";

using RecordingSink = tandem::testing::RecordingSecretSink;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sds_path_ = dir_ + "/sds/sds.sock";
    token_file_ = dir_ + "/token";
    WriteToken(kToken);
    test_ca_ = *TestCa::Create("cluster.local");
    ca_ = *FakeCaServer::Create(test_ca_.get(), kToken, kSpiffeId);
  }
  void TearDown() override {
    if (ca_client_) ca_client_->Shutdown();
    if (agent_) agent_->Stop();
    if (client_) client_->Stop();
    if (sds_) sds_->Stop();
    if (ca_) ca_->Stop();
  }
  void WriteToken(const std::string& token) {
    std::ofstream(token_file_) << token << "\n";
  }
  // (Re)starts the fake CA, on a new port behind the agent's stable CA address.
  void StartCa() {
    ASSERT_TRUE(ca_->Start().ok());
    ca_service_.set_target_port(ca_->port());
  }
  void StartSds() {
    SdsServerOptions options;
    options.socket_path = sds_path_;
    options.allowed_uids = {};
    options.registry = &registry_;
    options.first_bytes_timeout = first_bytes_timeout_;
    options.max_silent_connections = max_silent_connections_;
    absl::StatusOr<std::unique_ptr<SdsServer>> sds = SdsServer::Create(options);
    ASSERT_TRUE(sds.ok()) << sds.status();
    sds_ = *std::move(sds);
    ASSERT_TRUE(sds_->Start().ok());
  }
  void StartAgent(int64_t validity_seconds = 3600,
                  absl::Duration ca_timeout = absl::Seconds(2),
                  absl::Duration initial_backoff = absl::Milliseconds(50)) {
    CaClientOptions ca;
    ca.address = absl::StrCat("127.0.0.1:", ca_service_.port());
    ca.root_pem = test_ca_->root_pem();
    ca.timeout = ca_timeout;
    ca_client_ = *CaClient::Create(ca);
    StartSds();
    AgentOptions options;
    options.ns = "shop";
    options.service_account = "cart";
    options.token_file = token_file_;
    options.requested_validity_seconds = validity_seconds;
    options.policy.initial_backoff = initial_backoff;
    options.policy.max_backoff = std::max(initial_backoff, absl::Milliseconds(400));
    options.registry = &registry_;
    agent_ = std::make_unique<Agent>(options, ca_client_.get(), sds_.get());
    agent_->Start();
  }
  void StartProxyClient() {
    client_ = *proxy::SdsClient::Create(sds_path_, &sink_);
    client_->Start();
  }
  double Metric(const std::string& sample) {
    return tandem::testing::MetricValue(registry_.RenderPrometheus(), sample);
  }
  double Failures(const std::string& reason) {
    return Metric(
        absl::StrCat("tandem_agent_rotation_failures_total{reason=\"", reason, "\"}"));
  }

  absl::Duration first_bytes_timeout_ = absl::Seconds(5);
  size_t max_silent_connections_ = 64;
  tandem::testing::TempDir temp_{"tandem-agent-test"};
  std::string dir_ = temp_.path(), sds_path_, token_file_;
  metrics::Registry registry_;
  std::unique_ptr<TestCa> test_ca_;
  std::unique_ptr<FakeCaServer> ca_;
  tandem::testing::TcpForwarder ca_service_;  // the agent's CA address
  std::unique_ptr<CaClient> ca_client_;
  std::unique_ptr<SdsServer> sds_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<proxy::SdsClient> client_;
  RecordingSink sink_;
};

TEST_F(AgentTest, DeliversAVerifiedCertificateOverSdsAndTheProxyAcks) {
  StartCa();
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  StartAgent();
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  WorkloadSecretPem secret = sink_.last();
  absl::StatusOr<IssuedCredential> check =
      AcceptCredential(secret.private_key, {secret.cert_chain, secret.trust_bundle}, "",
                       kSpiffeId, absl::Now());
  EXPECT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(secret.trust_bundle, test_ca_->root_pem());
  EXPECT_TRUE(WaitFor([&] { return sds_->acks() >= 1; }, absl::Seconds(5)));
  // The agent publishes its state after the push the proxy may already have read.
  EXPECT_TRUE(
      WaitFor([&] { return agent_->state() == CertState::kValid; }, absl::Seconds(5)));
  EXPECT_TRUE(agent_->ready());
  EXPECT_EQ(Metric("tandem_agent_certificate_state{state=\"valid\"}"), 1);
  EXPECT_EQ(Metric("tandem_agent_certificate_state{state=\"no_certificate\"}"), 0);
  EXPECT_EQ(Metric("tandem_agent_ca_requests_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Metric("tandem_agent_ca_request_duration_seconds_count"), 1);
  EXPECT_GT(Metric("tandem_agent_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(absl::Now()));
  // The lifetime TandemCertificateNearExpiry measures: from the request, not from the
  // not-before the CA back-dated by a minute.
  EXPECT_GE(Metric("tandem_agent_certificate_issued_timestamp_seconds"), before);
  EXPECT_NEAR(Metric("tandem_agent_certificate_expiry_timestamp_seconds") -
                  Metric("tandem_agent_certificate_issued_timestamp_seconds"),
              3600, 2);
}

TEST_F(AgentTest, SocketIsOwnerOnlyInAnOwnerOnlyDirectory) {
  StartSds();
  struct stat st;
  ASSERT_EQ(stat(sds_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((dir_ + "/sds").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
}

TEST_F(AgentTest, RotationPushesEachNewCertificateToTheOpenStream) {
  StartCa();
  StartAgent(/*validity_seconds=*/2);
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  std::string first = sink_.last().cert_chain;
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 3; }, absl::Seconds(15)))
      << "rotations: " << agent_->rotations();
  EXPECT_NE(sink_.last().cert_chain, first);
  EXPECT_NE(sink_.last().private_key, first);
  // The server counts a push once its Write returns, which can be after the client has
  // read it: wait for the counter rather than read it once.
  EXPECT_TRUE(WaitFor([&] { return Metric("tandem_agent_sds_pushes_total") >= 3; },
                      absl::Seconds(5)))
      << "pushes: " << Metric("tandem_agent_sds_pushes_total");
  // Counted after the push, like the pushes above.
  EXPECT_TRUE(WaitFor(
      [&] { return Metric("tandem_agent_rotations_total{result=\"success\"}") >= 3; },
      absl::Seconds(5)))
      << "rotations: " << Metric("tandem_agent_rotations_total{result=\"success\"}");
}

TEST_F(AgentTest, RetriesWithBackoffWhileTheCaIsDownThenSucceedsWhenItAppears) {
  StartAgent();  // its CA address has no CA behind it yet
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return Failures("ca") >= 3; }, absl::Seconds(10)));
  EXPECT_EQ(Metric("tandem_agent_ca_reachable"), 0);
  EXPECT_EQ(agent_->state(), CertState::kNoCertificate);
  EXPECT_FALSE(agent_->ready());
  EXPECT_EQ(Metric("tandem_agent_certificate_state{state=\"no_certificate\"}"), 1);
  EXPECT_EQ(sink_.count(), 0);
  StartCa();
  EXPECT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(15)));
  EXPECT_TRUE(
      WaitFor([&] { return agent_->state() == CertState::kValid; }, absl::Seconds(5)));
  EXPECT_EQ(Metric("tandem_agent_consecutive_failures"), 0);
  EXPECT_EQ(Metric("tandem_agent_ca_reachable"), 1);
}

TEST_F(AgentTest, KeepsTheCurrentCertificateWhenTheCaDiesMidLife) {
  StartCa();
  StartAgent(/*validity_seconds=*/5);
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  ca_->Stop();
  // Past the renewal point (about 2 s in), before expiry (4-5 s): the renewal waits
  // for the CA and the certificate stays in force.
  ASSERT_TRUE(
      WaitFor([&] { return agent_->state() == CertState::kRenewing; }, absl::Seconds(4)));
  EXPECT_TRUE(agent_->ready());
  EXPECT_EQ(sink_.count(), 1);
  // Left alone, the certificate runs out and the state says so; the call that waited
  // for the CA gave up at the expiry and counts as a failure.
  EXPECT_TRUE(
      WaitFor([&] { return agent_->state() == CertState::kExpired; }, absl::Seconds(6)));
  EXPECT_TRUE(WaitFor(
      [&] { return Metric("tandem_agent_certificate_state{state=\"expired\"}") == 1; },
      absl::Seconds(2)));
  EXPECT_FALSE(agent_->ready());
  EXPECT_TRUE(WaitFor([&] { return Failures("ca") >= 1; }, absl::Seconds(5)));
  EXPECT_EQ(sink_.count(), 1);
}

TEST_F(AgentTest, ARenewalMadeWhileTheCaIsUnreachableWaitsForItInsteadOfFailing) {
  // No CA behind the address yet: the channel fails to connect and backs off. A
  // fail-fast call failed at once, and after an expiry each such failure doubled the
  // wait before the next (the soak saw calls fail up to 0.9 s after the CA was back,
  // and recoveries of 8 s and more). The call's 30 s timeout is never reached here.
  StartAgent(/*validity_seconds=*/3600, /*ca_timeout=*/absl::Seconds(30));
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return ca_service_.accepted() >= 1; }, absl::Seconds(10)));
  StartCa();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(20)));
  EXPECT_EQ(Failures("ca"), 0);
  EXPECT_EQ(Metric("tandem_agent_rotations_total{result=\"failure\"}"), 0);
}

TEST_F(AgentTest,
       ARenewalThatFoundTheCaUnreachableRetriesWhenTheCaAnswersNotAfterItsBackoff) {
  // The first failure backs off an hour: without the news that the CA answered, the
  // retry would come 30-60 min later and the wait below would time out.
  StartAgent(/*validity_seconds=*/3600, /*ca_timeout=*/absl::Milliseconds(200),
             /*initial_backoff=*/absl::Hours(1));
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return Failures("ca") >= 1; }, absl::Seconds(10)));
  EXPECT_EQ(Metric("tandem_agent_ca_reachable"), 0);
  StartCa();
  // What the policy relay says each time its stream to the CA comes back. The retry's
  // call waits 0.2 s for the channel, which may still be in its reconnect backoff: a
  // retry that misses it fails and waits for the next news, as in the agent.
  EXPECT_TRUE(WaitFor(
      [&] {
        agent_->CaReachable();
        return sink_.count() >= 1;
      },
      absl::Seconds(15)))
      << "failures: " << Failures("ca");
  EXPECT_EQ(Metric("tandem_agent_ca_reachable"), 1);
  EXPECT_EQ(Metric("tandem_agent_consecutive_failures"), 0);
}

TEST_F(AgentTest, RefusesBadCaResponsesAndKeepsTheCurrentCertificate) {
  StartCa();
  StartAgent(/*validity_seconds=*/6);
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  WorkloadSecretPem good = sink_.last();
  ca_->set_mode(FakeCaServer::Mode::kGarbage);
  ASSERT_TRUE(WaitFor([&] { return Failures("bad_response") >= 1; }, absl::Seconds(6)));
  ca_->set_mode(FakeCaServer::Mode::kAnotherKey);
  double before = Failures("bad_response");
  ASSERT_TRUE(
      WaitFor([&] { return Failures("bad_response") >= before + 1; }, absl::Seconds(3)));
  // Neither reached the proxy: it still holds the first certificate.
  EXPECT_EQ(sink_.count(), 1);
  EXPECT_EQ(sink_.last().cert_chain, good.cert_chain);
  EXPECT_EQ(agent_->state(), CertState::kRenewing);
  ca_->set_mode(FakeCaServer::Mode::kIssue);
  EXPECT_TRUE(WaitFor([&] { return sink_.count() >= 2; }, absl::Seconds(5)));
  EXPECT_NE(sink_.last().cert_chain, good.cert_chain);
}

TEST_F(AgentTest, ReReadsTheTokenFileBeforeEveryRequest) {
  WriteToken("stale-token");
  StartCa();
  StartAgent();
  StartProxyClient();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric("tandem_agent_ca_requests_total{result=\"unauthenticated\"}") >= 1;
      },
      absl::Seconds(10)));
  EXPECT_EQ(sink_.count(), 0);
  WriteToken(kToken);  // the kubelet rotated the projected token
  EXPECT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
}

TEST_F(AgentTest, ProxyRefusalIsNackedAndCounted) {
  StartCa();
  sink_.set_refuse(true);
  StartAgent();
  StartProxyClient();
  EXPECT_TRUE(WaitFor([&] { return sds_->nacks() >= 1; }, absl::Seconds(10)));
  EXPECT_EQ(sds_->acks(), 0u);
  EXPECT_EQ(Metric("tandem_agent_sds_responses_total{result=\"nack\"}"), 1);
}

TEST_F(AgentTest, ProxyIsReFedAfterTheAgentRestarts) {
  StartCa();
  StartAgent();
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  agent_->Stop();
  sds_->Stop();
  agent_.reset();
  sds_.reset();
  int before = sink_.count();
  StartAgent();
  EXPECT_TRUE(WaitFor([&] { return sink_.count() > before; }, absl::Seconds(15)));
}

TEST_F(AgentTest, ServesOnlyTheResourcesAStreamAsksFor) {
  StartCa();
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return agent_->rotations() >= 1; }, absl::Seconds(10)));
  auto stub = ::envoy::service::secret::v3::SecretDiscoveryService::NewStub(
      grpc::CreateChannel("unix:" + sds_path_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto stream = stub->StreamSecrets(&context);
  ::envoy::service::discovery::v3::DiscoveryRequest request;
  request.set_type_url(
      "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret");
  request.add_resource_names("ROOTCA");
  ASSERT_TRUE(stream->Write(request));
  ::envoy::service::discovery::v3::DiscoveryResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.resources_size(), 1);
  ::envoy::extensions::transport_sockets::tls::v3::Secret secret;
  ASSERT_TRUE(response.resources(0).UnpackTo(&secret));
  EXPECT_EQ(secret.name(), "ROOTCA");
  EXPECT_EQ(secret.validation_context().trusted_ca().inline_bytes(),
            test_ca_->root_pem());
  EXPECT_FALSE(response.nonce().empty());
  EXPECT_FALSE(response.version_info().empty());
  context.TryCancel();
  stream->Finish();
}

TEST_F(AgentTest, RefusesSdsPeerWithAnotherUid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid (65534)";
  StartSds();
  // Let the other uid reach the socket, so only the peer-credential check stands.
  chmod(dir_.c_str(), 0755);
  chmod((dir_ + "/sds").c_str(), 0755);
  chmod(sds_path_.c_str(), 0666);
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sds_path_.c_str(), sizeof(addr.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(4);
    char c;
    _exit(read(fd, &c, 1) == 0 ? 0 : 5);  // closed by the agent
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(WaitFor([&] { return sds_->refused_peers() == 1; }, absl::Seconds(5)));
  EXPECT_EQ(Metric("tandem_agent_sds_refused_peers_total{reason=\"uid\"}"), 1);
}

// Connects to the SDS socket and sends nothing; -1 on failure.
int ConnectSilently(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the agent closed `fd` within `timeout`.
bool ClosedByAgent(int fd, absl::Duration timeout) {
  pollfd p{fd, POLLIN, 0};
  char c;
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) > 0 &&
         recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

// Connections that never speak are not gRPC's: with `max_silent_connections` waiting,
// the oldest is closed for a new one, and the proxy that does speak is served.
TEST_F(AgentTest, ShedsTheOldestSilentSdsConnectionAndServesTheProxy) {
  max_silent_connections_ = 2;
  first_bytes_timeout_ = absl::Seconds(60);  // only shedding closes one here
  StartCa();
  StartAgent();
  int first = ConnectSilently(sds_path_);
  int second = ConnectSilently(sds_path_);
  int third = ConnectSilently(sds_path_);
  ASSERT_TRUE(first >= 0 && second >= 0 && third >= 0);
  EXPECT_TRUE(ClosedByAgent(first, absl::Seconds(5)));
  StartProxyClient();
  EXPECT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  // The proxy's connection, the newest, shed `second`.
  EXPECT_TRUE(ClosedByAgent(second, absl::Seconds(5)));
  EXPECT_EQ(Metric("tandem_agent_sds_silent_closed_total{reason=\"shed\"}"), 2);
  for (int fd : {first, second, third}) close(fd);
}

// A silent connection is closed at first_bytes_timeout.
TEST_F(AgentTest, ClosesASilentSdsConnectionAtTheFirstBytesTimeout) {
  first_bytes_timeout_ = absl::Milliseconds(200);
  StartSds();
  int fd = ConnectSilently(sds_path_);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(ClosedByAgent(fd, absl::Seconds(5)));
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric("tandem_agent_sds_silent_closed_total{reason=\"timeout\"}") == 1;
      },
      absl::Seconds(5)));
  close(fd);
}

}  // namespace
}  // namespace tandem::agent
