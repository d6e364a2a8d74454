#include "controlplane/injection/webhook_ca_bundle.h"

#include <atomic>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/subprocess.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;
using ::tandem::testing::WaitFor;

constexpr char kPath[] =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
    "tandem-sidecar-injector";
constexpr char kBundlePem[] =
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

// A configuration as the API server returns it: our webhook, and one of someone
// else's that must stay untouched. RV is replaced by the resourceVersion.
constexpr char kConfig[] = R"({"apiVersion":"admissionregistration.k8s.io/v1",
  "kind":"MutatingWebhookConfiguration","metadata":{"name":"tandem-sidecar-injector",
  "resourceVersion":"RV","uid":"u-1"},"webhooks":[
  {"name":"sidecar-injector.tandem.dev","admissionReviewVersions":["v1"],
   "sideEffects":"None","clientConfig":{"service":{"name":"tandem-injector",
   "namespace":"tandem-system","path":"/inject","port":443}}},
  {"name":"other.example.com","clientConfig":{"caBundle":"b3RoZXI=",
   "service":{"name":"other","namespace":"tandem-system"}}}]})";

std::string Config(const std::string& resource_version) {
  return absl::StrReplaceAll(kConfig, {{"RV", resource_version}});
}

TEST(SetWebhookCaBundleTest, SetsOnlyOurWebhooksAndKeepsTheRest) {
  absl::StatusOr<CaBundleEdit> edit = SetWebhookCaBundle(Config("7"), {}, "QUJD");
  ASSERT_TRUE(edit.ok()) << edit.status();
  EXPECT_EQ(edit->matched, 1);
  EXPECT_TRUE(edit->changed);
  EXPECT_TRUE(absl::StrContains(
      edit->object_json,
      R"("clientConfig":{"service":{"name":"tandem-injector","namespace":"tandem-system","path":"/inject","port":443},"caBundle":"QUJD"})"))
      << edit->object_json;
  EXPECT_TRUE(absl::StrContains(edit->object_json, R"("caBundle":"b3RoZXI=")"));
  EXPECT_TRUE(absl::StrContains(edit->object_json, R"("resourceVersion":"7")"));
  // Applying it again changes nothing.
  absl::StatusOr<CaBundleEdit> again = SetWebhookCaBundle(edit->object_json, {}, "QUJD");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->matched, 1);
  EXPECT_FALSE(again->changed);
}

TEST(SetWebhookCaBundleTest, CountsNoMatchForAnotherService) {
  absl::StatusOr<CaBundleEdit> edit =
      SetWebhookCaBundle(Config("1"), {"tandem-injector", "elsewhere"}, "QUJD");
  ASSERT_TRUE(edit.ok());
  EXPECT_EQ(edit->matched, 0);
  EXPECT_FALSE(edit->changed);
}

TEST(SetWebhookCaBundleTest, RefusesWhatIsNotAWebhookConfiguration) {
  struct Case {
    std::string json;
    std::string error;
  } cases[] = {
      {"", "webhook configuration: not a JSON object"},
      {"{\"webhooks\":[", "webhook configuration: not a JSON object"},
      {"[1,2]", "webhook configuration: not a JSON object"},
      {"{\"kind\":\"Status\"}", "webhook configuration: no \"webhooks\" list"},
      {"{\"webhooks\":{}}", "webhook configuration: no \"webhooks\" list"},
      {"{\"webhooks\":[" + std::string(100, '[') + std::string(100, ']') + "]}",
       "webhook configuration: nested deeper than 64"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CaBundleEdit> edit = SetWebhookCaBundle(c.json, {}, "QUJD");
    EXPECT_EQ(edit.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_EQ(edit.status().message(), c.error) << c.json;
  }
  // Brackets inside strings are not nesting.
  EXPECT_TRUE(SetWebhookCaBundle(
                  "{\"x\":\"" + std::string(100, '[') + "\",\"webhooks\":[]}", {}, "QUJD")
                  .ok());
}

// Against the API-server stand-in (tests/support/kube_api_standin.py), a real HTTPS
// process holding the MutatingWebhookConfiguration, through a KubeClient as tandem-ca
// shares one; faults are injected with the stand-in's /_test/fail.
class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    client_ = *KubeClient::Create(standin_->ClientOptions());
  }
  void TearDown() override { publisher_.reset(); }
  // Stores the configuration (as `kubectl apply` would).
  void CreateConfig() {
    absl::StatusOr<HttpsResponse> r = standin_->Call(
        "POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        Config(""));
    ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  }
  // The stored configuration, parsed; null when absent.
  nlohmann::json Stored() {
    absl::StatusOr<HttpsResponse> r = standin_->Call("GET", kPath);
    if (!r.ok() || r->status != 200) return nullptr;
    return nlohmann::json::parse(r->body);
  }
  // The caBundle of our webhook (the first) and of the other one.
  std::string OurBundle() {
    nlohmann::json c = Stored();
    return c.is_null() ? "" : c["webhooks"][0]["clientConfig"].value("caBundle", "");
  }
  // Answers the next `count` requests `method` to the configuration with `status`.
  void Fail(const std::string& method, int status, int count) {
    ASSERT_TRUE(standin_->Control(
        "fail", absl::StrCat(R"({"method":")", method, R"(","path":")", kPath,
                             R"(","status":)", status, R"(,"count":)", count, "}")));
  }
  // "METHOD status" of each request to the configuration so far.
  std::vector<std::string> Requests() {
    std::vector<std::string> out;
    for (const nlohmann::json& r : nlohmann::json::parse(standin_->Requests())) {
      if (r.value("path", "") != kPath) continue;
      out.push_back(absl::StrCat(r.value("method", ""), " ", r.value("status", 0)));
    }
    return out;
  }
  WebhookCaBundlePublisher::Options Options() {
    WebhookCaBundlePublisher::Options options;
    options.client = client_.get();
    options.ca_bundle_pem = kBundlePem;
    options.registry = &registry_;
    options.max_conflicts = 3;
    options.check_interval = absl::Milliseconds(20);
    return options;
  }
  WebhookCaBundlePublisher& Publisher() {
    if (!publisher_) {
      absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>> created =
          WebhookCaBundlePublisher::Create(Options());
      EXPECT_TRUE(created.ok()) << created.status();
      publisher_ = *std::move(created);
    }
    return *publisher_;
  }
  uint64_t Syncs(const std::string& result) {
    return registry_
        .GetCounter("tandem_ca_webhook_ca_bundle_syncs_total",
                    "Rounds keeping the injector webhook's caBundle in place, by result.",
                    {{"result", result}})
        .Value();
  }

  std::unique_ptr<KubeStandin> standin_;
  std::unique_ptr<KubeClient> client_;
  metrics::Registry registry_;
  std::unique_ptr<WebhookCaBundlePublisher> publisher_;
};

TEST_F(PublisherTest, PutsTheBundleOnOurWebhookOnlyWithTheSharedClientsToken) {
  CreateConfig();
  ASSERT_TRUE(Publisher().Publish().ok());
  EXPECT_EQ(Requests(), (std::vector<std::string>{"GET 200", "PUT 200"}));
  nlohmann::json stored = Stored();
  EXPECT_EQ(stored["webhooks"][0]["clientConfig"]["caBundle"],
            absl::Base64Escape(kBundlePem));
  EXPECT_EQ(stored["webhooks"][0]["clientConfig"]["service"]["path"], "/inject");
  EXPECT_EQ(stored["webhooks"][1]["clientConfig"]["caBundle"], "b3RoZXI=");
  EXPECT_EQ(Syncs("updated"), 1u);

  // A rotated token: the stand-in refuses the old one, the client re-reads its file
  // and retries. The bundle is in place, so no PUT.
  standin_->SetToken("token-2");
  const size_t before = Requests().size();
  ASSERT_TRUE(Publisher().Publish().ok());
  std::vector<std::string> after = Requests();
  after.erase(after.begin(), after.begin() + before);
  EXPECT_EQ(after, (std::vector<std::string>{"GET 401", "GET 200"}));
  EXPECT_EQ(Syncs("unchanged"), 1u);
}

TEST_F(PublisherTest, FollowsTheBundleSourceFromRoundToRound) {
  CreateConfig();
  absl::Mutex bundle_mu;
  std::string bundle = kBundlePem;
  WebhookCaBundlePublisher::Options options = Options();
  options.ca_bundle_source = [&] {
    absl::MutexLock lock(&bundle_mu);
    return bundle;
  };
  publisher_ = *WebhookCaBundlePublisher::Create(options);
  ASSERT_TRUE(publisher_->Publish().ok());
  // tandem-ca reloaded its root files: the next round publishes the new bundle.
  const std::string rotated = std::string(kBundlePem) + kBundlePem;
  {
    absl::MutexLock lock(&bundle_mu);
    bundle = rotated;
  }
  ASSERT_TRUE(publisher_->Publish().ok());
  EXPECT_EQ(OurBundle(), absl::Base64Escape(rotated));
  EXPECT_EQ(Syncs("updated"), 2u);
}

TEST_F(PublisherTest, RetriesAConflictWithAFreshRead) {
  CreateConfig();
  Fail("PUT", 409, 1);
  ASSERT_TRUE(Publisher().Publish().ok());
  EXPECT_EQ(Requests(),
            (std::vector<std::string>{"GET 200", "PUT 409", "GET 200", "PUT 200"}));
  EXPECT_EQ(OurBundle(), absl::Base64Escape(kBundlePem));
  EXPECT_EQ(Syncs("updated"), 1u);
}

TEST_F(PublisherTest, GivesUpWhenConflictsPersist) {
  CreateConfig();
  Fail("PUT", 409, 3);
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(status.message(),
            absl::StrCat("PUT ", kPath, ": still conflicting after 3 attempts"));
  EXPECT_EQ(Requests().size(), 6u);
  EXPECT_EQ(Syncs("conflict"), 1u);
}

TEST_F(PublisherTest, ReportsAMissingConfigurationWithoutFailingHard) {
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "MutatingWebhookConfiguration \"tandem-sidecar-injector\" does not exist");
  EXPECT_EQ(Syncs("not_found"), 1u);
  // The next round, once the object exists, succeeds.
  CreateConfig();
  EXPECT_TRUE(Publisher().Publish().ok());
  EXPECT_EQ(Syncs("updated"), 1u);
}

TEST_F(PublisherTest, ReportsMissingRbacForeignConfigurationsAndGarbage) {
  CreateConfig();
  Fail("GET", 403, 1);
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), absl::StrCat("GET ", kPath,
                                           ": HTTP 403 (RBAC: get and update on this "
                                           "mutatingwebhookconfiguration)"));
  EXPECT_EQ(Syncs("unauthorized"), 1u);

  // A 200 whose body is not a webhook configuration (a Status object).
  Fail("GET", 200, 1);
  status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "webhook configuration: no \"webhooks\" list");
  EXPECT_EQ(Syncs("malformed"), 1u);

  nlohmann::json foreign = Stored();
  foreign["webhooks"][0]["clientConfig"]["service"]["name"] = "not-ours";
  ASSERT_EQ(standin_->Call("PUT", kPath, foreign.dump())->status, 200);
  status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "MutatingWebhookConfiguration \"tandem-sidecar-injector\" has no webhook "
            "whose clientConfig.service is tandem-system/tandem-injector");
  EXPECT_EQ(Syncs("no_matching_webhook"), 1u);
}

TEST_F(PublisherTest, BackgroundLoopRetriesUntilTheBundleIsInPlace) {
  CreateConfig();
  Fail("GET", 500, 2);
  Publisher().Start();
  EXPECT_TRUE(WaitFor([&] { return Syncs("updated") == 1; }, absl::Seconds(20)));
  publisher_->Stop();
  EXPECT_EQ(Syncs("api_error"), 2u);
  EXPECT_EQ(OurBundle(), absl::Base64Escape(kBundlePem));
}

// Like the trust-root ConfigMaps, the caBundle has one writer among the replicas: the
// Lease holder. A replica that does not hold it makes no request; one that takes it
// over puts the bundle back at once (here after a `kubectl apply` emptied it).
TEST_F(PublisherTest, OnlyTheLeaseHolderWritesAndANewOneRepairsAtOnce) {
  CreateConfig();
  std::atomic<bool> a_leads{true}, b_leads{false};
  std::atomic<int> b_checks{0};
  WebhookCaBundlePublisher::Options a = Options(), b = Options();
  a.may_write = [&] { return a_leads.load(); };
  b.may_write = [&] {
    ++b_checks;
    return b_leads.load();
  };
  b.registry = nullptr;
  std::unique_ptr<WebhookCaBundlePublisher> replica_a =
      *WebhookCaBundlePublisher::Create(a);
  std::unique_ptr<WebhookCaBundlePublisher> replica_b =
      *WebhookCaBundlePublisher::Create(b);
  replica_b->Start();
  // b has looked several times and, not leading, asked nothing.
  ASSERT_TRUE(WaitFor([&] { return b_checks.load() >= 5; }, absl::Seconds(20)));
  EXPECT_TRUE(Requests().empty());

  replica_a->Start();
  ASSERT_TRUE(WaitFor([&] { return Syncs("updated") == 1; }, absl::Seconds(20)));
  EXPECT_EQ(Requests(), (std::vector<std::string>{"GET 200", "PUT 200"}));

  // The Lease moves to b; a stops writing, and b finds and repairs an emptied caBundle
  // without waiting for its resync interval.
  a_leads = false;
  replica_a->Stop();
  nlohmann::json emptied = Stored();
  emptied["webhooks"][0]["clientConfig"].erase("caBundle");
  ASSERT_EQ(standin_->Call("PUT", kPath, emptied.dump())->status, 200);
  b_leads = true;
  EXPECT_TRUE(WaitFor([&] { return OurBundle() == absl::Base64Escape(kBundlePem); },
                      absl::Seconds(20)));
  replica_b->Stop();
}

TEST_F(PublisherTest, RefusesBadOptions) {
  WebhookCaBundlePublisher::Options options;
  options.ca_bundle_pem = kBundlePem;
  EXPECT_EQ(WebhookCaBundlePublisher::Create(options).status().message(),
            "webhook caBundle: a Kubernetes client is required");
  options.client = client_.get();
  options.config_name = "a/b";
  EXPECT_EQ(WebhookCaBundlePublisher::Create(options).status().message(),
            "webhook configuration name \"a/b\"");
  options.config_name = "ok";
  options.ca_bundle_pem = "";
  EXPECT_EQ(WebhookCaBundlePublisher::Create(options).status().message(),
            "webhook caBundle: no root bundle");
}

}  // namespace
}  // namespace tandem::controlplane
