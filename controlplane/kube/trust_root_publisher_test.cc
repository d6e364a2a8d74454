#include "controlplane/kube/trust_root_publisher.h"

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/registry.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;
using ::tandem::testing::WaitFor;

constexpr char kBundle[] =
    "-----BEGIN CERTIFICATE-----\nroot-1\n-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\nroot-2\n-----END CERTIFICATE-----\n";

class TrustRootPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    client_ = *KubeClient::Create(standin_->ClientOptions());
    MakeNamespace("meshed", true);
    MakeNamespace("plain", false);
  }

  void MakeNamespace(const std::string& name, bool meshed) {
    std::string labels = meshed ? R"(,"labels":{"tandem-injection":"enabled"})" : "";
    absl::StatusOr<HttpsResponse> r = standin_->Call(
        "POST", "/api/v1/namespaces",
        absl::StrCat(R"({"metadata":{"name":")", name, R"(")", labels, "}}"));
    ASSERT_TRUE(r.ok() && r->status == 201);
  }

  std::unique_ptr<TrustRootPublisher> Publisher() {
    TrustRootPublisher::Options options;
    options.client = client_.get();
    options.bundle = [this] {
      absl::MutexLock lock(&bundle_mu_);
      return bundle_;
    };
    options.bundle_poll = absl::Milliseconds(100);
    options.may_write = [this] { return leader_.load(); };
    options.registry = &registry_;
    absl::StatusOr<std::unique_ptr<TrustRootPublisher>> p =
        TrustRootPublisher::Create(options);
    EXPECT_TRUE(p.ok()) << p.status();
    (*p)->Start();
    return *std::move(p);
  }

  static std::string Path(const std::string& ns) {
    return absl::StrCat("/api/v1/namespaces/", ns, "/configmaps/tandem-ca-root");
  }
  // The bundle in `ns`'s ConfigMap; "" when it has none.
  std::string BundleIn(const std::string& ns) {
    absl::StatusOr<HttpsResponse> r = standin_->Call("GET", Path(ns));
    if (!r.ok() || r->status != 200) return "";
    nlohmann::json cm = nlohmann::json::parse(r->body);
    return cm["data"].value("ca-cert.pem", "");
  }
  bool HasBundle(const std::string& ns, const std::string& bundle = kBundle) {
    return WaitFor([&] { return BundleIn(ns) == bundle; }, absl::Seconds(20));
  }

  std::unique_ptr<KubeStandin> standin_;
  std::unique_ptr<KubeClient> client_;
  std::atomic<bool> leader_{true};
  absl::Mutex bundle_mu_;
  std::string bundle_ ABSL_GUARDED_BY(bundle_mu_) = kBundle;
  metrics::Registry registry_;
};

TEST_F(TrustRootPublisherTest, WritesTheWholeBundleIntoServedNamespacesOnly) {
  std::unique_ptr<TrustRootPublisher> publisher = Publisher();
  ASSERT_TRUE(HasBundle("meshed"));
  absl::StatusOr<HttpsResponse> cm = standin_->Call("GET", Path("meshed"));
  EXPECT_EQ(nlohmann::json::parse(
                cm->body)["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "tandem-ca");
  EXPECT_EQ(BundleIn("plain"), "");
  EXPECT_EQ(BundleIn("tandem-system"), "");
  MakeNamespace("new-meshed", true);
  EXPECT_TRUE(HasBundle("new-meshed"));
  EXPECT_EQ(BundleIn("plain"), "");
}

TEST_F(TrustRootPublisherTest, RepairsAnEditAndADeletion) {
  std::unique_ptr<TrustRootPublisher> publisher = Publisher();
  ASSERT_TRUE(HasBundle("meshed"));
  nlohmann::json cm = nlohmann::json::parse(standin_->Call("GET", Path("meshed"))->body);
  cm["data"]["ca-cert.pem"] = "tampered";
  cm["data"]["extra"] = "x";
  ASSERT_EQ(standin_->Call("PUT", Path("meshed"), cm.dump())->status, 200);
  ASSERT_TRUE(HasBundle("meshed"));
  cm = nlohmann::json::parse(standin_->Call("GET", Path("meshed"))->body);
  EXPECT_FALSE(cm["data"].contains("extra"));
  ASSERT_EQ(standin_->Call("DELETE", Path("meshed"))->status, 200);
  EXPECT_TRUE(HasBundle("meshed"));
  // The write is seen in the API before the publisher has counted it.
  EXPECT_TRUE(WaitFor([&] { return publisher->written() == 3; }, absl::Seconds(20)))
      << publisher->written();
  std::string metrics = registry_.RenderPrometheus();
  EXPECT_TRUE(absl::StrContains(metrics,
                                "tandem_ca_trust_root_syncs_total{result=\"created\"} 2"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics,
                                "tandem_ca_trust_root_syncs_total{result=\"updated\"} 1"))
      << metrics;
}

TEST_F(TrustRootPublisherTest, OnlyTheLeaderWritesAndANewLeaderCatchesUp) {
  leader_ = false;
  std::unique_ptr<TrustRootPublisher> publisher = Publisher();
  MakeNamespace("later", true);
  // Not written while another replica leads (the informers are in sync meanwhile).
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(standin_->Requests(), "watch=1"); },
                      absl::Seconds(20)));
  EXPECT_EQ(BundleIn("meshed"), "");
  leader_ = true;
  EXPECT_TRUE(HasBundle("meshed"));
  EXPECT_TRUE(HasBundle("later"));
}

TEST_F(TrustRootPublisherTest, ANewRootReachesEveryConfigMap) {
  std::unique_ptr<TrustRootPublisher> publisher = Publisher();
  ASSERT_TRUE(HasBundle("meshed"));
  const std::string rotated =
      std::string(kBundle) + "-----BEGIN CERTIFICATE-----\nroot-3\n";
  {
    absl::MutexLock lock(&bundle_mu_);
    bundle_ = rotated;  // CaCore::Reload took a new root
  }
  EXPECT_TRUE(HasBundle("meshed", rotated));
}

TEST_F(TrustRootPublisherTest, RefusesAMissingBundleOrABadName) {
  TrustRootPublisher::Options options;
  options.client = client_.get();
  EXPECT_EQ(TrustRootPublisher::Create(options).status().message(),
            "trust-root ConfigMaps: a client, a bundle, a name and a key are required");
  options.bundle = [] { return std::string(kBundle); };
  options.configmap_name = "a/b";
  EXPECT_EQ(TrustRootPublisher::Create(options).status().message(),
            "trust-root ConfigMap name \"a/b\"");
}

}  // namespace
}  // namespace tandem::controlplane
