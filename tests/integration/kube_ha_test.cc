// tandem-ca in a cluster, with two real replicas against one API-server stand-in
// (tests/support/kube_api_standin.py): revocations and the mesh policy live in
// ConfigMaps both replicas watch, the trust-root ConfigMaps have one writer elected
// with a Lease. Proxies and agents are the real processes of the loopback mesh.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/traffic.h"
#include "tests/support/kube_standin.h"

namespace tandem::testing {
namespace {

constexpr char kInboundRevoked[] =
    "tandem_proxy_handshake_failures_total{direction=\"inbound\",reason=\"revoked\"}";
constexpr char kClientId[] = "spiffe://cluster.local/ns/shop/sa/client";
constexpr char kLease[] =
    "/apis/coordination.k8s.io/v1/namespaces/tandem-system/leases/tandem-ca";
constexpr char kShopRoot[] = "/api/v1/namespaces/shop/configmaps/tandem-ca-root";
constexpr char kWebhooks[] =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
constexpr char kWebhookConfig[] =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
    "tandem-sidecar-injector";

struct Replica {
  std::unique_ptr<Subprocess> process;
  int metrics = 0, admin = 0;
};

class KubeHaTest : public MeshTest {
 protected:
  void SetUp() override {
    MeshTest::SetUp();
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    ASSERT_EQ(
        standin_
            ->Call(
                "POST", "/api/v1/namespaces",
                R"({"metadata":{"name":"shop","labels":{"tandem-injection":"enabled"}}})")
            ->status,
        201);
    nlohmann::json policy = {
        {"metadata", {{"name", "tandem-mesh-policy"}}},
        {"data", {{"mesh-policy.yaml", "revocation:\n  closeOpenConnections: true\n"}}}};
    ASSERT_EQ(
        standin_
            ->Call("POST", "/api/v1/namespaces/tandem-system/configmaps", policy.dump())
            ->status,
        201);
    extra_proxy_json_ = ", \"policy_from_agent\": true";
    extra_agent_flag_ = "--validity=60s";  // outlives the test: refusals are revocations
  }

  // Starts a replica named `name` with the mesh's one root (copied into its own
  // root directory, as each pod mounts the same Secret).
  Replica StartReplica(const std::string& name) {
    if (std::filesystem::exists(dir_ + "/ca/ca-key.pem")) {
      std::string root = dir_ + "/" + name;
      mkdir(root.c_str(), 0700);
      for (const char* file : {"ca-key.pem", "ca-cert.pem"}) {
        std::filesystem::copy_file(dir_ + "/ca/" + file, root + "/" + file);
      }
    }
    extra_ca_args_ = {"--kube-api-server=" + standin_->address(),
                      "--kube-ca-file=" + standin_->ca_path(),
                      "--kube-token-file=" + standin_->token_path(),
                      "--policy-configmap=tandem-system/tandem-mesh-policy",
                      "--revocations-configmap=tandem-system/tandem-revocations",
                      "--admin=127.0.0.1:0",
                      "--leader-lease=tandem-system/tandem-ca",
                      "--pod-name=" + name,
                      "--trust-root-configmap=tandem-ca-root",
                      "--injector-listen=127.0.0.1:0",
                      "--template=" TANDEM_SOURCE_DIR
                      "/deploy/kubernetes/injection/sidecar-template.yaml"};
    const bool first = !std::filesystem::exists(dir_ + "/ca/ca-key.pem");
    StartCa(first ? "ca" : name, "", /*keep_ca_root=*/!first);
    Replica replica;
    replica.process = std::move(ca_);
    replica.metrics = ca_metrics_;
    if (replica.process) replica.admin = WaitForListeningPort(*replica.process, "admin");
    return replica;
  }

  std::string Streams(const Replica& r) { return HttpGet(r.admin, "/policy-streams"); }
  std::string PolicyJson(const Pod& pod) { return HttpGet(pod.admin, "/policy"); }
  std::string Holder() {
    absl::StatusOr<controlplane::HttpsResponse> r = standin_->Call("GET", kLease);
    if (!r.ok() || r->status != 200) return "";
    return nlohmann::json::parse(r->body)["spec"].value("holderIdentity", "");
  }
  // The caBundle of the webhook configuration's first webhook; "" when none.
  std::string WebhookCaBundle() {
    absl::StatusOr<controlplane::HttpsResponse> r = standin_->Call("GET", kWebhookConfig);
    if (!r.ok() || r->status != 200) return "";
    return nlohmann::json::parse(r->body)["webhooks"][0]["clientConfig"].value("caBundle",
                                                                               "");
  }
  // The caBundle rounds a replica made, whatever their result.
  double WebhookRounds(const Replica& r) {
    std::string text = HttpGet(r.metrics, "/metrics");
    double sum = 0;
    for (const char* result :
         {"updated", "unchanged", "not_found", "no_matching_webhook", "conflict",
          "unauthorized", "api_error", "unavailable", "malformed"}) {
      sum += MetricValue(
          text, absl::StrCat("tandem_ca_webhook_ca_bundle_syncs_total{result=\"", result,
                             "\"}"));
    }
    return sum;
  }
  std::string ShopRoot() {
    absl::StatusOr<controlplane::HttpsResponse> r = standin_->Call("GET", kShopRoot);
    if (!r.ok() || r->status != 200) return "";
    return nlohmann::json::parse(r->body)["data"].value("ca-cert.pem", "");
  }

  bool Revoke(const Replica& through, const std::string& spiffe_id) {
    std::string log = dir_ + "/revoke.log";
    std::string command =
        absl::StrCat(TANDEM_CA_BIN, " revoke --admin=127.0.0.1:", through.admin,
                     " --spiffe-id=", spiffe_id, " --reason=test > ", log, " 2>&1");
    if (through.admin > 0 && system(command.c_str()) == 0) return true;
    std::ifstream in(log);
    std::cerr << "tandem-ca revoke failed: " << in.rdbuf() << "\n";
    return false;
  }

  std::unique_ptr<KubeStandin> standin_;
};

TEST_F(KubeHaTest, RevocationThroughOneReplicaReachesAProxyStreamingFromTheOther) {
  client_.name = "client";
  server_.name = "server";
  // The agents reach "the Service", which points to b while the server's agent
  // starts and to a when the client's does.
  Replica b = StartReplica("ca-b");
  ASSERT_GT(b.admin, 0);
  StartPod(server_, "shop", "server",
           absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""));
  Replica a = StartReplica("ca-a");
  ASSERT_GT(a.admin, 0);
  StartPod(client_, "shop", "client",
           absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", server_.inbound,
                        "\""));
  ASSERT_TRUE(
      WaitFor([&] { return Ready(client_) && Ready(server_); }, absl::Seconds(20)));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Streams(b).find("ns/shop/sa/server") != std::string::npos &&
               Streams(a).find("ns/shop/sa/client") != std::string::npos;
      },
      absl::Seconds(20)))
      << "a: " << Streams(a) << "\nb: " << Streams(b);
  EXPECT_EQ(Streams(b).find("ns/shop/sa/client"), std::string::npos);
  // The policy came from the ConfigMap, through b.
  ASSERT_TRUE(WaitFor(
      [&] { return PolicyJson(server_).find("control plane") != std::string::npos; },
      absl::Seconds(20)))
      << PolicyJson(server_);
  TrafficReport before = RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0);
  ASSERT_GT(before.short_ok, 0);

  const absl::Time revoked_at = absl::Now();
  ASSERT_TRUE(Revoke(a, kClientId));
  ASSERT_TRUE(WaitFor(
      [&] {
        return PolicyJson(server_).find(std::string(kClientId) + "\", \"expires") !=
               std::string::npos;
      },
      absl::Seconds(10)))
      << PolicyJson(server_);
  std::cerr << "a revocation made through replica a reached the proxy streaming from "
               "replica b in "
            << absl::FormatDuration(absl::Now() - revoked_at) << "\n";
  EXPECT_EQ(RunEchoTraffic(client_.outbound, absl::Milliseconds(200), 1, 0).short_ok, 0);
  EXPECT_GT(Metric(server_, kInboundRevoked), 0);
  // Both replicas hold it; the ConfigMap has it once.
  absl::StatusOr<controlplane::HttpsResponse> cm = standin_->Call(
      "GET", "/api/v1/namespaces/tandem-system/configmaps/tandem-revocations");
  ASSERT_TRUE(cm.ok() && cm->status == 200);
  EXPECT_NE(cm->body.find("ns/shop/sa/client"), std::string::npos);
  EXPECT_NE(HttpGet(b.admin, "/revocations").find(kClientId), std::string::npos);
}

TEST_F(KubeHaTest, OneReplicaWritesTheTrustRootAndTheOtherTakesOverWhenItStops) {
  // The webhook configuration as the manifest installs it: caBundle empty.
  nlohmann::json webhooks = {
      {"metadata", {{"name", "tandem-sidecar-injector"}}},
      {"webhooks",
       {{{"name", "sidecar-injector.tandem.dev"},
         {"clientConfig",
          {{"service",
            {{"name", "tandem-injector"}, {"namespace", "tandem-system"}}}}}}}}};
  ASSERT_EQ(standin_->Call("POST", kWebhooks, webhooks.dump())->status, 201);
  Replica a = StartReplica("ca-a");
  Replica b = StartReplica("ca-b");
  const std::string bundle = HttpGet(a.metrics, "/trust-bundle");
  ASSERT_FALSE(bundle.empty());
  ASSERT_TRUE(WaitFor([&] { return ShopRoot() == bundle; }, absl::Seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return !Holder().empty(); }, absl::Seconds(20)));
  const std::string leader = Holder();
  Replica& leading = leader == "ca-a" ? a : b;
  Replica& following = leader == "ca-a" ? b : a;
  const std::string successor = leader == "ca-a" ? "ca-b" : "ca-a";
  // The caBundle has one writer too: the follower has made no request for it.
  const std::string ca_bundle = absl::Base64Escape(bundle);
  ASSERT_TRUE(WaitFor([&] { return WebhookCaBundle() == ca_bundle; }, absl::Seconds(20)));
  EXPECT_GE(WebhookRounds(leading), 1);
  EXPECT_EQ(WebhookRounds(following), 0);
  // A `kubectl apply` of the manifest empties it; the leader would repair it at its
  // next resync (a minute), the successor does at once when it takes the Lease.
  nlohmann::json emptied =
      nlohmann::json::parse(standin_->Call("GET", kWebhookConfig)->body);
  emptied["webhooks"][0]["clientConfig"].erase("caBundle");
  ASSERT_EQ(standin_->Call("PUT", kWebhookConfig, emptied.dump())->status, 200);
  // SIGTERM: the leader releases the Lease as it stops, so the other need not wait
  // out the lease duration.
  ASSERT_EQ(leading.process->Signal(SIGTERM, absl::Seconds(10)), 0);
  ASSERT_TRUE(WaitFor([&] { return Holder() == successor; }, absl::Seconds(20)));
  const absl::Time deleted_at = absl::Now();
  ASSERT_EQ(standin_->Call("DELETE", kShopRoot)->status, 200);
  ASSERT_TRUE(WaitFor([&] { return ShopRoot() == bundle; }, absl::Seconds(20)));
  std::cerr << "the new leader put a deleted tandem-ca-root back in "
            << absl::FormatDuration(absl::Now() - deleted_at) << "\n";
  EXPECT_TRUE(WaitFor([&] { return WebhookCaBundle() == ca_bundle; }, absl::Seconds(20)));
  EXPECT_GE(WebhookRounds(following), 1);
}

TEST_F(KubeHaTest, RefusesKubernetesFlagsItCannotHonour) {
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  const std::string kube = "--kube-api-server=" + standin_->address();
  int run = 0;
  for (const Case& c : std::vector<Case>{
           {{"--policy-file=/x", "--policy-configmap=a/b"},
            "--policy-file or --policy-configmap: one source of the mesh policy"},
           {{"--state-dir=/x", "--revocations-configmap=a/b"},
            "--state-dir or --revocations-configmap: one home for revocations"},
           {{"--revocations-configmap=no-namespace"},
            "--revocations-configmap: NAMESPACE/NAME of the ConfigMap"},
           {{"--policy-configmap=a/b/c"},
            "--policy-configmap: NAMESPACE/NAME of the ConfigMap"},
           {{"--leader-lease=tandem-ca"}, "--leader-lease: NAMESPACE/NAME of the Lease"},
           {{"--pod-name=x"},
            "--pod-name names this replica in --leader-lease: give that too"},
           {{"--trust-root-namespaces=a=b"},
            "--trust-root-namespaces needs --trust-root-configmap"},
           {{"--trust-root-configmap=a/b", kube, "--kube-ca-file=" + standin_->ca_path(),
             "--kube-token-file=" + standin_->token_path()},
            "--trust-root-configmap: trust-root ConfigMap name \"a/b\""},
           {{"--revocations-configmap=tandem-system/r", kube,
             "--kube-ca-file=/nonexistent"},
            "--revocations-configmap: --kube-ca-file: cannot read /nonexistent"},
       }) {
    std::vector<std::string> argv = {TANDEM_CA_BIN, "serve", "--root-dir=" + dir_ + "/ca",
                                     "--listen=127.0.0.1:0", "--metrics="};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    Subprocess ca("tandem-ca", argv, absl::StrCat(dir_, "/refused-", ++run, ".log"));
    ASSERT_TRUE(ca.Start());
    int status = ca.Signal(0, absl::Seconds(20));  // waits for the exit
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << ca.Log();
    EXPECT_EQ(WEXITSTATUS(status), 2) << ca.Log();
    EXPECT_TRUE(absl::StrContains(ca.Log(), c.says)) << ca.Log();
  }
}

}  // namespace
}  // namespace tandem::testing
