#include "controlplane/kube/kube_client.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/pki/certificate_authority.h"
#include "gtest/gtest.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;

constexpr char kConfigMaps[] = "/api/v1/namespaces/tandem-system/configmaps";

std::string ConfigMap(const std::string& name, const std::string& value) {
  return absl::StrCat(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")",
                      name, R"("},"data":{"k":")", value, R"("}})");
}

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
  }

  std::unique_ptr<KubeClient> Client(KubeClient::Options options = {}) {
    options.api_server = standin_->address();
    if (options.ca_pem.empty()) options.ca_pem = standin_->ca_pem();
    options.token_path = standin_->token_path();
    absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  void Create(const std::string& name, const std::string& value) {
    absl::StatusOr<HttpsResponse> r =
        standin_->Call("POST", kConfigMaps, ConfigMap(name, value));
    ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  }

  std::unique_ptr<KubeStandin> standin_;
};

// Collects watch events on a thread of its own until Stop().
class WatchRecorder {
 public:
  WatchRecorder(const KubeClient& client, std::string rv) {
    thread_ = std::thread([this, &client, rv] {
      absl::Status s = client.Watch(kConfigMaps, rv, absl::Seconds(60), &cancel_,
                                    [this](const WatchEvent& e) {
                                      absl::MutexLock lock(&mu_);
                                      events_.push_back(e);
                                      return true;
                                    });
      absl::MutexLock lock(&mu_);
      result_ = s;
      done_ = true;
    });
  }
  ~WatchRecorder() { Stop(); }
  void Stop() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Waits until `n` events (or the end of the watch) arrived; returns them.
  std::vector<WatchEvent> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return events_.size() >= n || done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(20));
    return events_;
  }

 private:
  std::atomic<bool> cancel_{false};
  absl::Mutex mu_;
  std::vector<WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Status result_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST_F(KubeClientTest, ListsThenWatchesFromTheListsResourceVersion) {
  Create("before", "1");
  std::unique_ptr<KubeClient> client = Client();
  absl::StatusOr<KubeClient::ObjectList> list = client->List(kConfigMaps);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(MetadataField(list->items[0], "name"), "before");
  WatchRecorder watch(*client, list->resource_version);
  Create("after", "2");
  nlohmann::json changed = list->items[0];
  changed["data"]["k"] = "changed";
  ASSERT_EQ(
      standin_->Call("PUT", absl::StrCat(kConfigMaps, "/before"), changed.dump())->status,
      200);
  ASSERT_EQ(standin_->Call("DELETE", absl::StrCat(kConfigMaps, "/after"))->status, 200);
  std::vector<WatchEvent> events = watch.WaitFor(3);
  ASSERT_GE(events.size(), 3u);
  // Only what happened after the list: "before"'s creation is not replayed.
  EXPECT_EQ(events[0].type, WatchEvent::Type::kAdded);
  EXPECT_EQ(MetadataField(events[0].object, "name"), "after");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kModified);
  EXPECT_EQ(events[1].object["data"]["k"], "changed");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDeleted);
  EXPECT_LT(std::stoll(list->resource_version), std::stoll(events[0].resource_version));
  EXPECT_TRUE(
      absl::StrContains(standin_->Requests(),
                        absl::StrCat("watch=1&allowWatchBookmarks=true&resourceVersion=",
                                     list->resource_version)));
}

TEST_F(KubeClientTest, WatchFromAnExpiredResourceVersionIsOutOfRange) {
  std::unique_ptr<KubeClient> client = Client();
  absl::StatusOr<KubeClient::ObjectList> list = client->List(kConfigMaps);
  ASSERT_TRUE(list.ok());
  Create("x", "1");
  ASSERT_TRUE(standin_->Control("compact"));
  absl::Status s = client->Watch(kConfigMaps, list->resource_version, absl::Seconds(30),
                                 nullptr, [](const WatchEvent&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_TRUE(
      absl::StrContains(s.message(), "ERROR event 410 Expired: too old resource version"))
      << s;
}

TEST_F(KubeClientTest, HttpGoneOnWatchIsOutOfRange) {
  std::unique_ptr<KubeClient> client = Client();
  ASSERT_TRUE(
      standin_->Control("fail", absl::StrCat(R"({"method":"WATCH","path":")", kConfigMaps,
                                             R"(","status":410,"count":1})")));
  absl::Status s = client->Watch(kConfigMaps, "1", absl::Seconds(30), nullptr,
                                 [](const WatchEvent&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_EQ(s.message(), absl::StrCat("WATCH ", kConfigMaps,
                                      ": HTTP 410: injected by the test (410)"));
}

TEST_F(KubeClientTest, BookmarksCarryTheNewestResourceVersion) {
  std::unique_ptr<KubeClient> client = Client();
  absl::StatusOr<KubeClient::ObjectList> list = client->List(kConfigMaps);
  ASSERT_TRUE(list.ok());
  // A change elsewhere moves the resourceVersion without an event on this watch.
  ASSERT_EQ(
      standin_->Call("POST", "/api/v1/namespaces", R"({"metadata":{"name":"elsewhere"}})")
          ->status,
      201);
  WatchRecorder watch(*client, list->resource_version);
  ASSERT_TRUE(standin_->Control("bookmark"));
  std::vector<WatchEvent> events = watch.WaitFor(1);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].type, WatchEvent::Type::kBookmark);
  EXPECT_GT(std::stoll(events[0].resource_version), std::stoll(list->resource_version));
}

TEST_F(KubeClientTest, WatchEndsWhenTheServerEndsIt) {
  std::unique_ptr<KubeClient> client = Client();
  absl::StatusOr<KubeClient::ObjectList> list = client->List(kConfigMaps);
  ASSERT_TRUE(list.ok());
  std::thread closer([this] {
    // Until the watch is open, a close has nothing to close: repeat.
    for (int i = 0; i < 200 && !absl::StrContains(standin_->Requests(), "watch=1"); ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    standin_->Control("close-watches");
  });
  absl::Status s = client->Watch(kConfigMaps, list->resource_version, absl::Seconds(60),
                                 nullptr, [](const WatchEvent&) { return true; });
  closer.join();
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(KubeClientTest, UpdateRetriesAConflictWithTheFreshObject) {
  Create("shared", "mine");
  std::unique_ptr<KubeClient> client = Client();
  int rounds = 0;
  absl::StatusOr<nlohmann::json> stored = client->Update(
      kConfigMaps, "shared", [&](nlohmann::json* object) -> absl::StatusOr<bool> {
        if (++rounds == 1) {
          // Another writer gets in between our GET and our PUT.
          nlohmann::json theirs = *object;
          theirs["data"]["theirs"] = "1";
          EXPECT_EQ(
              standin_->Call("PUT", absl::StrCat(kConfigMaps, "/shared"), theirs.dump())
                  ->status,
              200);
        } else {
          EXPECT_EQ((*object)["data"]["theirs"], "1");  // the fresh copy
        }
        (*object)["data"]["ours"] = "1";
        return true;
      });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(rounds, 2);
  EXPECT_EQ((*stored)["data"]["theirs"], "1");
  EXPECT_EQ((*stored)["data"]["ours"], "1");
  EXPECT_TRUE(absl::StrContains(
      standin_->Requests(), R"("method": "PUT", "path": ")" + std::string(kConfigMaps) +
                                R"(/shared", "token": "token-1", "status": 409)"));
}

TEST_F(KubeClientTest, UpdateCreatesAMissingObjectAndLeavesAnUnchangedOne) {
  std::unique_ptr<KubeClient> client = Client();
  absl::StatusOr<nlohmann::json> created = client->Update(
      kConfigMaps, "new", [](nlohmann::json* object) -> absl::StatusOr<bool> {
        EXPECT_TRUE(object->is_null());
        *object =
            nlohmann::json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","data":{}})");
        return true;
      });
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(MetadataField(*created, "name"), "new");
  EXPECT_FALSE(MetadataField(*created, "resourceVersion").empty());
  absl::StatusOr<nlohmann::json> unchanged = client->Update(
      kConfigMaps, "new", [](nlohmann::json*) -> absl::StatusOr<bool> { return false; });
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(MetadataField(*unchanged, "resourceVersion"),
            MetadataField(*created, "resourceVersion"));
}

TEST_F(KubeClientTest, PersistentConflictsAreAborted) {
  Create("contended", "1");
  std::unique_ptr<KubeClient> client = Client();
  ASSERT_TRUE(standin_->Control(
      "fail", absl::StrCat(R"({"method":"PUT","path":")", kConfigMaps,
                           R"(/contended","status":409,"count":100})")));
  absl::StatusOr<nlohmann::json> stored = client->Update(
      kConfigMaps, "contended",
      [](nlohmann::json* object) -> absl::StatusOr<bool> {
        (*object)["data"]["k"] = "2";
        return true;
      },
      3);
  EXPECT_EQ(stored.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(stored.status().message(),
            absl::StrCat("update ", kConfigMaps,
                         "/contended: still conflicting after 3 attempts"));
}

TEST_F(KubeClientTest, RereadsTheTokenAfterA401) {
  KubeClient::Options options;
  options.token_refresh = absl::Hours(1);
  std::unique_ptr<KubeClient> client = Client(options);
  ASSERT_EQ(client->Call("GET", kConfigMaps)->status, 200);
  standin_->SetToken("token-2");  // the kubelet rotated it
  absl::StatusOr<HttpsResponse> r = client->Call("GET", kConfigMaps);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(client->token_reads(), 2u);
  std::string log = standin_->Requests();
  EXPECT_TRUE(absl::StrContains(log, R"("token": "token-1", "status": 401)")) << log;
  EXPECT_TRUE(absl::StrContains(log, R"("token": "token-2", "status": 200)")) << log;
}

TEST_F(KubeClientTest, RereadsTheTokenEveryRefreshInterval) {
  KubeClient::Options options;
  options.token_refresh = absl::ZeroDuration();
  std::unique_ptr<KubeClient> client = Client(options);
  ASSERT_EQ(client->Call("GET", kConfigMaps)->status, 200);
  standin_->SetToken("token-2");
  ASSERT_EQ(client->Call("GET", kConfigMaps)->status, 200);
  EXPECT_EQ(client->token_reads(), 2u);
  EXPECT_FALSE(absl::StrContains(standin_->Requests(), R"("status": 401)"));
}

TEST_F(KubeClientTest, ARefusedTokenIsPermissionDenied) {
  absl::StatusOr<std::unique_ptr<KubeClient>> client = KubeClient::Create(
      {standin_->address(), standin_->ca_pem(), "", "", "nobody-has-this"});
  ASSERT_TRUE(client.ok());
  absl::StatusOr<KubeClient::ObjectList> list = (*client)->List(kConfigMaps);
  EXPECT_EQ(list.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(list.status().message(),
            absl::StrCat("LIST ", kConfigMaps, ": HTTP 401: Unauthorized"));
}

TEST_F(KubeClientTest, RefusesAnApiServerItsCaDoesNotVerify) {
  absl::StatusOr<pki::CertificateAuthority> other =
      pki::CertificateAuthority::CreateRoot({}, absl::Now());
  ASSERT_TRUE(other.ok());
  KubeClient::Options options;
  options.ca_pem = other->root().ToPem();
  std::unique_ptr<KubeClient> client = Client(options);
  absl::StatusOr<HttpsResponse> r = client->Call("GET", kConfigMaps);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "TLS handshake with"))
      << r.status();

  KubeClient::Options wrong_name;
  wrong_name.server_name = "not-kubernetes.example";
  r = Client(wrong_name)->Call("GET", kConfigMaps);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "TLS handshake with"))
      << r.status();

  KubeClient::Options by_name;
  by_name.server_name = "kubernetes.default.svc";  // what the pod's client checks
  EXPECT_EQ(Client(by_name)->Call("GET", kConfigMaps)->status, 200);
}

TEST(StatusFromHttpTest, MapsTheApiServersCodes) {
  struct Case {
    int http;
    std::string body;
    absl::StatusCode code;
  } cases[] = {
      {404, "", absl::StatusCode::kNotFound},
      {409, R"({"kind":"Status","reason":"AlreadyExists","message":"m"})",
       absl::StatusCode::kAlreadyExists},
      {409, R"({"kind":"Status","reason":"Conflict","message":"m"})",
       absl::StatusCode::kAborted},
      {410, "", absl::StatusCode::kOutOfRange},
      {401, "", absl::StatusCode::kPermissionDenied},
      {403, "", absl::StatusCode::kPermissionDenied},
      {500, "not json", absl::StatusCode::kUnavailable},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(StatusFromHttp({c.http, c.body}, "GET /x").code(), c.code) << c.http;
  }
  EXPECT_EQ(StatusFromHttp({409, R"({"message":"taken"})"}, "POST /x").message(),
            "POST /x: HTTP 409: taken");
}

TEST(KubeClientOptionsTest, RefusesNoToken) {
  absl::StatusOr<std::unique_ptr<KubeClient>> client =
      KubeClient::Create({"127.0.0.1:1", "pem"});
  EXPECT_EQ(client.status().message(),
            "Kubernetes API: no token (file) for our identity");
}

}  // namespace
}  // namespace tandem::controlplane
