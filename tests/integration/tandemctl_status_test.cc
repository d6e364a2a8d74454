// `tandemctl proxy-status` and `tandemctl check` against real processes on loopback:
// tandem-ca (policy stream, admin endpoint, injector webhook), and per pod a
// tandem-agent and a tandem-proxy that takes its policy from the agent.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/version.h"
#include "controlplane/ca/ca_core.h"
#include "gtest/gtest.h"
#include "tests/integration/closed_port.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/subprocess.h"

namespace tandem::testing {
namespace {

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout, then stderr
};

class TandemctlStatusTest : public MeshTest {
 protected:
  void SetUp() override {
    MeshTest::SetUp();
    policy_file_ = dir_ + "/mesh-policy.yaml";
    WritePolicy("spiffe://cluster.local/ns/shop/*");
    extra_ca_args_ = {"--policy-file=" + policy_file_,
                      "--policy-poll=200ms",
                      "--admin=127.0.0.1:0",
                      "--injector-listen=127.0.0.1:0",
                      "--webhook-config=",
                      "--template=" TANDEM_SOURCE_DIR
                      "/deploy/kubernetes/injection/sidecar-template.yaml"};
    extra_proxy_json_ = ", \"policy_from_agent\": true";
    // Hour-long certificates: what `check` says about expiry depends on its
    // --expiry-warning only, never on how fast this machine renews.
    extra_agent_flag_ = "--validity=1h";
  }

  void StartMeshAndAdmin() {
    StartMesh();
    admin_ = absl::StrCat("127.0.0.1:", WaitForListeningPort(*ca_, "admin"));
    grpc_ = absl::StrCat("127.0.0.1:", WaitForListeningPort(*ca_, "grpc"));
    injector_ = absl::StrCat("127.0.0.1:", WaitForListeningPort(*ca_, "injector"));
    ASSERT_NE(admin_, "127.0.0.1:0") << ca_->Log();
  }

  void WritePolicy(const std::string& allowed) {
    std::ofstream(policy_file_ + ".tmp")
        << "workloads:\n  - namespace: shop\n    serviceAccount: server\n"
           "    inboundPorts:\n      - port: 8080\n        allow: ["
        << allowed << "]\n";
    std::rename((policy_file_ + ".tmp").c_str(), policy_file_.c_str());
  }

  // Runs tandemctl with `args`; its output is printed if the test fails.
  CommandRun Tandemctl(const std::vector<std::string>& args) {
    std::string out = dir_ + "/tandemctl.out";
    std::string command =
        absl::StrCat(TANDEMCTL_BIN, " ", absl::StrJoin(args, " "), " > ", out, " 2>&1");
    int status = std::system(command.c_str());
    std::stringstream text;
    text << std::ifstream(out).rdbuf();
    CommandRun run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
    last_ = absl::StrCat("$ tandemctl ", absl::StrJoin(args, " "), "\n", run.output,
                         "(exit ", run.exit_code, ")\n");
    return run;
  }
  CommandRun Check(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"check", "--admin=" + admin_,
                                     "--ca-address=" + grpc_,
                                     "--ca-root=" + dir_ + "/ca-root.pem"};
    args.insert(args.end(), more.begin(), more.end());
    return Tandemctl(args);
  }
  // The proxy-status line of `spiffe_id`, or "".
  std::string StatusLine(const std::string& spiffe_id) {
    for (absl::string_view line :
         absl::StrSplit(Tandemctl({"proxy-status", "--admin=" + admin_}).output, '\n')) {
      if (absl::StrContains(line, spiffe_id + " ")) return std::string(line);
    }
    return "";
  }
  // Waits until both proxies show an ACKed policy and a certificate.
  bool BothReported() {
    return WaitFor(
        [&] {
          for (const char* id : {"spiffe://cluster.local/ns/shop/sa/client",
                                 "spiffe://cluster.local/ns/shop/sa/server"}) {
            std::string line = StatusLine(id);
            if (!absl::StrContains(line, " ACKED ") || !absl::StrContains(line, "(in "))
              return false;
          }
          return true;
        },
        absl::Seconds(20));
  }
  std::vector<std::string> Lines(const CommandRun& run) {
    return absl::StrSplit(run.output, '\n', absl::SkipEmpty());
  }

  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "%s", last_.c_str());
    MeshTest::TearDown();
  }

  std::string policy_file_, admin_, grpc_, injector_, last_;
};

constexpr char kClient[] = "spiffe://cluster.local/ns/shop/sa/client";
constexpr char kServer[] = "spiffe://cluster.local/ns/shop/sa/server";

TEST_F(TandemctlStatusTest, ProxyStatusShowsEachProxyCertificateVersionsAndAckedPolicy) {
  StartMeshAndAdmin();
  const std::string proxy = absl::StrCat("tandem-proxy ", Version());
  for (const char* id : {kClient, kServer}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          std::string line = StatusLine(id);
          return absl::StrContains(line, proxy) && absl::StrContains(line, " ACKED ");
        },
        absl::Seconds(20)))
        << last_;
  }
  std::string line = StatusLine(kClient);
  std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
  // NAME IDENTITY SERIAL NOT-AFTER (in ...) AGENT tandem-proxy VERSION ACKED VERSION
  ASSERT_EQ(cells.size(), 11u) << line;
  EXPECT_EQ(cells[1], kClient);
  // The serial the agent installed, and its hour-long lifetime.
  EXPECT_TRUE(absl::StrContains(client_.agent->Log(), cells[2])) << cells[2];
  EXPECT_TRUE(absl::StartsWith(cells[5], "59m")) << line;
  EXPECT_EQ(cells[6], Version());
}

TEST_F(TandemctlStatusTest, NackedPolicyShowsItsErrorInProxyStatusAndFailsCheck) {
  StartMeshAndAdmin();
  ASSERT_TRUE(BothReported());
  // Valid for the CA (federation), but the proxy has no roots for partner.example.
  WritePolicy("spiffe://partner.example/ns/a/sa/b");
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(StatusLine(kServer), " NACKED "); },
                      absl::Seconds(20)))
      << server_.proxy->Log();
  EXPECT_TRUE(absl::StrContains(StatusLine(kServer), "no roots for trust domain"))
      << last_;
  EXPECT_TRUE(absl::StrContains(StatusLine(kClient), " ACKED ")) << last_;

  CommandRun check = Check();
  EXPECT_EQ(check.exit_code, 1);
  bool named = false;
  for (const std::string& l : Lines(check)) {
    if (absl::StartsWith(l, absl::StrCat("FAIL  proxy ")) &&
        absl::StrContains(l, kServer)) {
      named = absl::StrContains(l, "refused mesh policy version") &&
              absl::StrContains(l, "no roots for trust domain") &&
              absl::StrContains(l, "; look further: tandemctl proxy-status");
    } else {
      EXPECT_TRUE(absl::StartsWith(l, "ok    ")) << l;
    }
  }
  EXPECT_TRUE(named) << check.output;
}

TEST_F(TandemctlStatusTest, CheckPassesOnAHealthyMesh) {
  StartMeshAndAdmin();
  ASSERT_TRUE(BothReported());
  CommandRun check = Check({"--injector-address=" + injector_});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  std::vector<std::string> lines = Lines(check);
  ASSERT_EQ(lines.size(), 4u) << check.output;
  EXPECT_TRUE(absl::StartsWith(lines[0], "ok    ca: " + grpc_ + " serves gRPC over TLS"));
  EXPECT_TRUE(absl::StartsWith(lines[1], "ok    trust-bundle: "));
  EXPECT_TRUE(absl::StartsWith(
      lines[2], "ok    injector: " + injector_ +
                    " answers HTTPS as tandem-injector.tandem-system.svc"));
  EXPECT_EQ(lines[3],
            "ok    proxies: 2 connected; none refuses its policy, no certificate "
            "expires within 10m");
}

TEST_F(TandemctlStatusTest, CheckNamesCertificatesNearExpiry) {
  StartMeshAndAdmin();
  ASSERT_TRUE(BothReported());
  CommandRun check = Check({"--expiry-warning=2h"});
  EXPECT_EQ(check.exit_code, 1);
  int near = 0;
  for (const std::string& l : Lines(check)) {
    if (absl::StartsWith(l, "FAIL  proxy ")) {
      EXPECT_TRUE(absl::StrContains(l, "), within 2h; look further: ")) << l;
      EXPECT_TRUE(absl::StrContains(l, " (in 59m")) << l;
      ++near;
    }
  }
  EXPECT_EQ(near, 2) << check.output;
}

TEST_F(TandemctlStatusTest, CheckNamesACertificateThatExpiredUnrenewed) {
  extra_agent_flag_ = "--validity=3s";  // the fixture's 3-second certificates
  StartMeshAndAdmin();
  ASSERT_TRUE(BothReported());
  // The client's agent can no longer prove who it is: its renewals fail, while its
  // policy stream, opened before, stays up and shows the certificate running out.
  std::filesystem::remove(dir_ + "/client/token");
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(StatusLine(kClient), "s ago)"); },
                      absl::Seconds(20)))
      << client_.agent->Log();
  CommandRun check = Check({"--expiry-warning=0s"});
  EXPECT_EQ(check.exit_code, 1);
  bool named = false;
  for (const std::string& l : Lines(check)) {
    if (absl::StartsWith(l, "FAIL  proxy ") && absl::StrContains(l, kClient)) {
      named = absl::StrContains(l, " expired ") && absl::StrContains(l, "s ago); look");
    }
  }
  EXPECT_TRUE(named) << check.output;
}

TEST_F(TandemctlStatusTest, CheckNamesTheCaDown) {
  StartMeshAndAdmin();
  ca_.reset();
  CommandRun check = Check();
  EXPECT_EQ(check.exit_code, 1);
  std::vector<std::string> lines = Lines(check);
  ASSERT_EQ(lines.size(), 3u) << check.output;
  EXPECT_EQ(lines[0], "FAIL  ca: cannot connect to " + grpc_ +
                          ": Connection refused; look further: is tandem-ca running and "
                          "listening there (--listen)? kubectl -n tandem-system logs "
                          "deploy/tandem-ca");
  EXPECT_TRUE(
      absl::StartsWith(lines[1],
                       "FAIL  trust-bundle: cannot read the CA's bundle from the admin "
                       "endpoint: cannot connect to " +
                           admin_ + ": Connection refused"))
      << lines[1];
  EXPECT_TRUE(
      absl::StartsWith(lines[2], "FAIL  proxies: cannot read the policy streams: "))
      << lines[2];
}

TEST_F(TandemctlStatusTest, CheckNamesTheInjectorDown) {
  StartMeshAndAdmin();
  ASSERT_TRUE(BothReported());
  ClosedPort closed;
  std::string address = absl::StrCat("127.0.0.1:", closed.port());
  CommandRun check = Check({"--injector-address=" + address});
  EXPECT_EQ(check.exit_code, 1);
  std::vector<std::string> lines = Lines(check);
  ASSERT_EQ(lines.size(), 4u) << check.output;
  EXPECT_EQ(lines[2], "FAIL  injector: cannot connect to " + address +
                          ": Connection refused; look further: tandem-ca "
                          "--injector-listen; its log names the injector's listener and "
                          "certificate");
  EXPECT_TRUE(absl::StartsWith(lines[0], "ok    ca: "));
}

TEST_F(TandemctlStatusTest, CheckNamesARootFileThatDoesNotMatchTheCa) {
  StartMeshAndAdmin();
  // Another CA's root, as a stale ConfigMap would hold.
  controlplane::CaCoreOptions other_options;
  other_options.root_dir = dir_ + "/other";
  absl::StatusOr<std::unique_ptr<controlplane::CaCore>> other =
      controlplane::CaCore::Create(other_options, absl::Now());
  ASSERT_TRUE(other.ok()) << other.status();
  std::string other_root = dir_ + "/other-root.pem";
  Write(other_root, (*other)->trust_bundle_pem());
  CommandRun check =
      Tandemctl({"check", "--admin=" + admin_, "--ca-address=" + grpc_,
                 "--ca-root=" + other_root, "--injector-address=" + injector_});
  EXPECT_EQ(check.exit_code, 1);
  std::vector<std::string> lines = Lines(check);
  ASSERT_EQ(lines.size(), 4u) << check.output;
  EXPECT_TRUE(
      absl::StartsWith(lines[0], "FAIL  ca: the certificate " + grpc_ + " serves, "))
      << lines[0];
  EXPECT_TRUE(
      absl::StrContains(lines[0], ", does not verify against " + other_root + ": "))
      << lines[0];
  EXPECT_TRUE(absl::StartsWith(
      lines[1], "FAIL  trust-bundle: " + other_root + " lacks the CA's root(s) \""))
      << lines[1];
  EXPECT_TRUE(absl::StrContains(
      lines[1], "; " + other_root + " holds root(s) the CA does not serve: \""))
      << lines[1];
  EXPECT_TRUE(absl::StartsWith(lines[2], "FAIL  injector: the certificate " + injector_))
      << lines[2];
}

TEST_F(TandemctlStatusTest, RefusesAdminAddressesOffLoopbackAndMissingRoots) {
  CommandRun status = Tandemctl({"proxy-status", "--admin=10.0.0.1:15010"});
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_TRUE(
      absl::StartsWith(status.output,
                       "tandemctl: proxy-status: admin address \"10.0.0.1:15010\" "
                       "is not loopback"))
      << status.output;
  CommandRun check = Tandemctl({"check"});
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(
      check.output,
      "tandemctl: check needs --ca-root=FILE: the roots the workloads trust"))
      << check.output;
}

TEST_F(TandemctlStatusTest, CaRefusesAnAdminEndpointWithNothingToServe) {
  std::string log = dir_ + "/ca-admin.log";
  std::string command = absl::StrCat(TANDEM_CA_BIN, " serve --root-dir=", dir_,
                                     "/ca --listen=127.0.0.1:0 --metrics= "
                                     "--admin=127.0.0.1:0 > ",
                                     log, " 2>&1");
  int status = std::system(command.c_str());
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << text.str();
  EXPECT_TRUE(absl::StrContains(text.str(),
                                "--admin serves revocations and the policy streams: give "
                                "--state-dir=DIR, --revocations-configmap=NS/NAME, "
                                "--policy-file=FILE or --policy-configmap=NS/NAME too"))
      << text.str();
}

}  // namespace
}  // namespace tandem::testing
