// The agent against the real tandem-ca (in-process, gRPC+TLS on loopback) and the
// proxy's real SDS client over a Unix socket. gRPC code: no <openssl/...> here.
#include "agent/agent.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/ca_client.h"
#include "agent/sds_server.h"
#include "common/credential_request.h"
#include "controlplane/ca_server.h"
#include "controlplane/jwt.h"
#include "gtest/gtest.h"
#include "proxy/sds_client.h"
#include "tests/integration/subprocess.h"

namespace tandem::agent {
namespace {

using tandem::testing::WaitFor;

// Records what the proxy side would install; can be told to refuse.
class RecordingSink : public SecretSink {
 public:
  absl::Status UpdateSecret(const WorkloadSecretPem& secret) override {
    absl::MutexLock lock(&mu_);
    if (refuse_) return absl::InvalidArgumentError("refused by test");
    secrets_.push_back(secret);
    return absl::OkStatus();
  }
  int count() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(secrets_.size());
  }
  WorkloadSecretPem last() {
    absl::MutexLock lock(&mu_);
    return secrets_.back();
  }
  void set_refuse(bool refuse) {
    absl::MutexLock lock(&mu_);
    refuse_ = refuse;
  }

 private:
  absl::Mutex mu_;
  std::vector<WorkloadSecretPem> secrets_ ABSL_GUARDED_BY(mu_);
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-agent-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    signing_key_ =
        NewCredentialRequest("spiffe://cluster.local/ns/k/sa/k")->private_key_pem;
    ca_port_ = tandem::testing::PickUnusedPort();
    ca_options_.core.root_dir = dir_ + "/ca";
    ca_options_.listen_address = absl::StrCat("127.0.0.1:", ca_port_);
    ca_options_.token_public_key_pem = *controlplane::PublicKeyPemOf(signing_key_);
    token_file_ = dir_ + "/token";
    WriteToken({"shop", "cart"});
    // The root exists before the CA serves, as a deployment's config map would.
    root_pem_ = (*controlplane::CaCore::Create(ca_options_.core, absl::Now()))
                    ->trust_bundle_pem();
    sds_path_ = dir_ + "/sds/sds.sock";
  }
  void TearDown() override {
    if (agent_) agent_->Stop();
    if (client_) client_->Stop();
    if (sds_) sds_->Stop();
    if (ca_) ca_->Stop();
    std::filesystem::remove_all(dir_);
  }
  void WriteToken(const controlplane::ServiceAccount& sa) {
    std::ofstream(token_file_) << *controlplane::MintServiceAccountToken(
        signing_key_, sa, "istio-ca", "tandem", absl::Now(), absl::Hours(1));
  }
  void StartCa() {
    ca_ = *controlplane::CaServer::Create(ca_options_);
    ASSERT_TRUE(ca_->Start().ok());
  }
  void StartAgent(int64_t validity_seconds = 3600) {
    ca_client_ = *CaClient::Create(
        {absl::StrCat("127.0.0.1:", ca_port_), root_pem_, "tandem-ca", absl::Seconds(2)});
    sds_ = *SdsServer::Create({sds_path_, {}});
    ASSERT_TRUE(sds_->Start().ok());
    AgentOptions options;
    options.ns = "shop";
    options.service_account = "cart";
    options.token_file = token_file_;
    options.requested_validity_seconds = validity_seconds;
    options.policy.initial_backoff = absl::Milliseconds(50);
    options.policy.max_backoff = absl::Milliseconds(400);
    agent_ = std::make_unique<Agent>(options, ca_client_.get(), sds_.get());
    agent_->Start();
  }
  void StartProxyClient() {
    client_ = *proxy::SdsClient::Create(sds_path_, &sink_);
    client_->Start();
  }

  std::string dir_, signing_key_, token_file_, root_pem_, sds_path_;
  int ca_port_ = 0;
  controlplane::CaServerOptions ca_options_;
  std::unique_ptr<controlplane::CaServer> ca_;
  std::unique_ptr<CaClient> ca_client_;
  std::unique_ptr<SdsServer> sds_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<proxy::SdsClient> client_;
  RecordingSink sink_;
};

TEST_F(AgentTest, DeliversCertificateOverSdsAndTheProxyAcks) {
  StartCa();
  StartAgent();
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  WorkloadSecretPem secret = sink_.last();
  absl::StatusOr<IssuedCredential> check =
      AcceptCredential(secret.private_key, {secret.cert_chain, secret.trust_bundle}, "",
                       "spiffe://cluster.local/ns/shop/sa/cart", absl::Now());
  EXPECT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(WaitFor([&] { return sds_->acks() >= 1; }, absl::Seconds(5)));
  EXPECT_EQ(agent_->state(), CertState::kValid);
  // Socket and directory are owner-only.
  struct stat st;
  ASSERT_EQ(stat(sds_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((dir_ + "/sds").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
}

TEST_F(AgentTest, RotatesShortLivedCertificatesAndPushesEachOne) {
  StartCa();
  StartAgent(/*validity_seconds=*/2);
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 3; }, absl::Seconds(15)))
      << "rotations: " << agent_->rotations();
}

TEST_F(AgentTest, RetriesWhileTheCaIsDownAndRecoversWhenItAppears) {
  StartAgent();
  StartProxyClient();
  absl::SleepFor(absl::Milliseconds(800));  // let several attempts fail
  EXPECT_EQ(agent_->state(), CertState::kNoCertificate);
  EXPECT_EQ(sink_.count(), 0);
  EXPECT_NE(
      agent_->RenderMetrics().find("tandem_agent_ca_requests_total{result=\"error\"} "),
      std::string::npos);
  StartCa();
  EXPECT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(15)));
}

TEST_F(AgentTest, KeepsCurrentCertificateWhenTheCaDiesMidLife) {
  StartCa();
  StartAgent(/*validity_seconds=*/4);
  StartProxyClient();
  ASSERT_TRUE(WaitFor([&] { return sink_.count() >= 1; }, absl::Seconds(10)));
  ca_->Stop();
  absl::SleepFor(absl::Seconds(2.5));  // past the renewal point, before expiry
  EXPECT_EQ(agent_->state(), CertState::kValid);
  // Renewals are failing, and counted, while the old certificate stays in force.
  EXPECT_GT(tandem::testing::MetricValue(agent_->RenderMetrics(),
                                         "tandem_agent_consecutive_failures"),
            0);
  EXPECT_EQ(sink_.count(), 1);
}

TEST_F(AgentTest, ProxyRefusalIsNackedAndCounted) {
  StartCa();
  sink_.set_refuse(true);
  StartAgent();
  StartProxyClient();
  EXPECT_TRUE(WaitFor([&] { return sds_->nacks() >= 1; }, absl::Seconds(10)));
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

TEST_F(AgentTest, RefusesSdsPeerWithAnotherUid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  sds_ = *SdsServer::Create({sds_path_, {}});
  ASSERT_TRUE(sds_->Start().ok());
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
}

}  // namespace
}  // namespace tandem::agent
