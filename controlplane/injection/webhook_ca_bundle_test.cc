#include "controlplane/injection/webhook_ca_bundle.h"

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"
#include "gtest/gtest.h"
#include "tests/support/fake_https_server.h"

namespace tandem::controlplane {
namespace {

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

// Stands in for the API server: serves one MutatingWebhookConfiguration, stores what
// is PUT, bumps the resourceVersion, and answers with forced statuses when queued.
class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/webhook-ca-bundle-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    WriteToken("token-1");
    object_ = Config("1");
    server_ = *FakeHttpsServer::Create([this](const FakeHttpsRequest& request) {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (!forced_.empty()) {
        FakeHttpsReply reply = forced_.front();
        forced_.pop_front();
        if (reply.status == 409) object_ = Config(std::to_string(++version_));
        return reply;
      }
      if (request.method == "GET") return FakeHttpsReply{200, object_};
      object_ = request.body;
      return FakeHttpsReply{200, object_};
    });
  }
  void TearDown() override {
    publisher_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  void WriteToken(const std::string& token) {
    std::ofstream(dir_ + "/token") << token << "\n";
  }
  void Force(std::vector<int> statuses) {
    absl::MutexLock lock(&mu_);
    for (int s : statuses) forced_.push_back({s, R"({"kind":"Status"})"});
  }
  std::vector<FakeHttpsRequest> Requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  WebhookCaBundlePublisher& Publisher() {
    if (!publisher_) {
      WebhookCaBundlePublisher::Options options;
      options.api_server = absl::StrCat("127.0.0.1:", server_->port());
      options.ca_pem = server_->ca_pem();
      options.credential_token_path = dir_ + "/token";
      options.ca_bundle_pem = kBundlePem;
      options.registry = &registry_;
      options.max_conflicts = 3;
      absl::StatusOr<std::unique_ptr<WebhookCaBundlePublisher>> created =
          WebhookCaBundlePublisher::Create(options);
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

  std::string dir_;
  metrics::Registry registry_;
  absl::Mutex mu_;
  std::string object_ ABSL_GUARDED_BY(mu_);
  int version_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<FakeHttpsReply> forced_ ABSL_GUARDED_BY(mu_);
  std::vector<FakeHttpsRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<FakeHttpsServer> server_;
  std::unique_ptr<WebhookCaBundlePublisher> publisher_;
};

TEST_F(PublisherTest, PutsTheBundleWithTheBearerTokenReadEachCall) {
  ASSERT_TRUE(Publisher().Publish().ok());
  std::vector<FakeHttpsRequest> requests = Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, kPath);
  EXPECT_EQ(requests[0].authorization, "Bearer token-1");
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].path, kPath);
  EXPECT_EQ(requests[1].authorization, "Bearer token-1");
  EXPECT_EQ(requests[1].content_type, "application/json");
  EXPECT_TRUE(absl::StrContains(
      requests[1].body,
      absl::StrCat(R"("port":443},"caBundle":")", absl::Base64Escape(kBundlePem), "\"")))
      << requests[1].body;
  EXPECT_TRUE(absl::StrContains(requests[1].body, R"("resourceVersion":"1")"));
  EXPECT_EQ(Syncs("updated"), 1u);

  // A rotated token is used on the next call; the bundle is in place, so no PUT.
  WriteToken("token-2");
  ASSERT_TRUE(Publisher().Publish().ok());
  requests = Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].method, "GET");
  EXPECT_EQ(requests[2].authorization, "Bearer token-2");
  EXPECT_EQ(Syncs("unchanged"), 1u);
}

TEST_F(PublisherTest, FollowsTheBundleSourceFromRoundToRound) {
  absl::Mutex bundle_mu;
  std::string bundle = kBundlePem;
  WebhookCaBundlePublisher::Options options;
  options.api_server = absl::StrCat("127.0.0.1:", server_->port());
  options.ca_pem = server_->ca_pem();
  options.credential_token_path = dir_ + "/token";
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
  std::vector<FakeHttpsRequest> requests = Requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].method, "PUT");
  EXPECT_TRUE(absl::StrContains(
      requests[3].body,
      absl::StrCat(R"("caBundle":")", absl::Base64Escape(rotated), "\"")))
      << requests[3].body;
}

TEST_F(PublisherTest, RetriesAConflictWithTheFreshObject) {
  Force({200});  // the first GET answers normally...
  {
    absl::MutexLock lock(&mu_);
    forced_.front().body = Config("1");
  }
  Force({409});  // ...and the PUT conflicts; the object is now at version 2
  ASSERT_TRUE(Publisher().Publish().ok());
  std::vector<FakeHttpsRequest> requests = Requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_TRUE(absl::StrContains(requests[1].body, R"("resourceVersion":"1")"));
  EXPECT_EQ(requests[2].method, "GET");
  EXPECT_EQ(requests[3].method, "PUT");
  EXPECT_TRUE(absl::StrContains(requests[3].body, R"("resourceVersion":"2")"))
      << requests[3].body;
  EXPECT_EQ(Syncs("updated"), 1u);
}

TEST_F(PublisherTest, GivesUpWhenConflictsPersist) {
  Force({200, 409, 200, 409, 200, 409});
  {
    absl::MutexLock lock(&mu_);
    for (FakeHttpsReply& r : forced_) {
      if (r.status == 200) r.body = Config("1");
    }
  }
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(absl::StrContains(status.message(), "still conflicting after 3 attempts"));
  EXPECT_EQ(Requests().size(), 6u);
  EXPECT_EQ(Syncs("conflict"), 1u);
}

TEST_F(PublisherTest, ReportsAMissingConfigurationWithoutFailingHard) {
  Force({404});
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "MutatingWebhookConfiguration \"tandem-sidecar-injector\" does not exist");
  EXPECT_EQ(Syncs("not_found"), 1u);
  // The next round, once the object exists, succeeds.
  EXPECT_TRUE(Publisher().Publish().ok());
  EXPECT_EQ(Syncs("updated"), 1u);
}

TEST_F(PublisherTest, ReportsMissingRbacAndForeignConfigurations) {
  Force({403});
  absl::Status status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(status.message(), "HTTP 403 (RBAC: get and update"));
  EXPECT_EQ(Syncs("unauthorized"), 1u);

  {
    absl::MutexLock lock(&mu_);
    object_ = absl::StrReplaceAll(Config("1"), {{"tandem-injector", "not-ours"}});
  }
  status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), "tandem-system/tandem-injector"));
  EXPECT_EQ(Syncs("no_matching_webhook"), 1u);

  {
    absl::MutexLock lock(&mu_);
    object_ = "<html>proxy error</html>";
  }
  status = Publisher().Publish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Syncs("malformed"), 1u);
}

TEST_F(PublisherTest, BackgroundLoopRetriesUntilTheBundleIsInPlace) {
  Force({500, 500});
  Publisher().Start();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Syncs("updated") == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  publisher_->Stop();
  EXPECT_EQ(Syncs("api_error"), 2u);
  EXPECT_EQ(Syncs("updated"), 1u);
  absl::MutexLock lock(&mu_);
  EXPECT_TRUE(absl::StrContains(object_, absl::Base64Escape(kBundlePem)));
}

TEST(PublisherCreateTest, RefusesBadOptions) {
  WebhookCaBundlePublisher::Options options;
  options.api_server = "127.0.0.1:1";
  options.ca_pem = kBundlePem;
  options.credential_token = "t";
  options.ca_bundle_pem = kBundlePem;
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
