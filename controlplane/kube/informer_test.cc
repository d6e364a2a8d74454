#include "controlplane/kube/informer.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/support/kube_standin.h"

namespace tandem::controlplane {
namespace {

using ::tandem::testing::KubeStandin;
using ::tandem::testing::WaitFor;

constexpr char kConfigMaps[] = "/api/v1/namespaces/tandem-system/configmaps";

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    standin_ = KubeStandin::Start();
    ASSERT_NE(standin_, nullptr);
    client_ = *KubeClient::Create(standin_->ClientOptions());
  }

  std::unique_ptr<Informer> Watch() {
    Informer::Options options;
    options.client = client_.get();
    options.collection = kConfigMaps;
    options.on_event = [this](Informer::EventType type, const nlohmann::json& object) {
      absl::MutexLock lock(&mu_);
      events_.push_back(absl::StrCat(type == Informer::EventType::kAdded ? "ADDED "
                                     : type == Informer::EventType::kModified
                                         ? "MODIFIED "
                                         : "DELETED ",
                                     MetadataField(object, "name")));
    };
    auto informer = std::make_unique<Informer>(std::move(options));
    informer->Start();
    return informer;
  }

  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  ::testing::AssertionResult SawEvents(size_t n) {
    if (WaitFor([&] { return Events().size() >= n; }, absl::Seconds(20))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "events: " << absl::StrJoin(Events(), ", ");
  }

  void Put(const std::string& name, const std::string& value,
           const std::string& method = "POST") {
    std::string body = absl::StrCat(R"({"metadata":{"name":")", name,
                                    R"("},"data":{"k":")", value, R"("}})");
    std::string path =
        method == "POST" ? kConfigMaps : absl::StrCat(kConfigMaps, "/", name);
    absl::StatusOr<HttpsResponse> r = standin_->Call(method, path, body);
    ASSERT_TRUE(r.ok() && r->status / 100 == 2)
        << (r.ok() ? r->body : r.status().ToString());
  }

  std::unique_ptr<KubeStandin> standin_;
  std::unique_ptr<KubeClient> client_;
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(InformerTest, ListsThenFollowsEveryChange) {
  Put("a", "1");
  std::unique_ptr<Informer> informer = Watch();
  ASSERT_TRUE(SawEvents(1));
  EXPECT_TRUE(informer->synced());
  Put("b", "1");
  Put("a", "2", "PUT");
  ASSERT_EQ(standin_->Call("DELETE", absl::StrCat(kConfigMaps, "/b"))->status, 200);
  ASSERT_TRUE(SawEvents(4));
  EXPECT_EQ(Events(),
            (std::vector<std::string>{"ADDED a", "ADDED b", "MODIFIED a", "DELETED b"}));
  EXPECT_EQ((*informer->Get("tandem-system/a"))["data"]["k"], "2");
  EXPECT_FALSE(informer->Get("tandem-system/b").has_value());
  EXPECT_EQ(informer->lists(), 1u);
}

TEST_F(InformerTest, ListsAgainWhenItsResourceVersionExpiredAndReportsTheDifference) {
  Put("stays", "1");
  Put("changes", "1");
  Put("goes", "1");
  std::unique_ptr<Informer> informer = Watch();
  ASSERT_TRUE(SawEvents(3));
  // While no watch is open, things change and the history is compacted: the next
  // watch gets 410 and only a LIST can tell what happened.
  ASSERT_TRUE(
      standin_->Control("fail", absl::StrCat(R"({"method":"WATCH","path":")", kConfigMaps,
                                             R"(","status":503,"count":1000})")));
  ASSERT_TRUE(standin_->Control("close-watches"));
  Put("changes", "2", "PUT");
  ASSERT_EQ(standin_->Call("DELETE", absl::StrCat(kConfigMaps, "/goes"))->status, 200);
  Put("new", "1");
  ASSERT_TRUE(standin_->Control("compact"));
  ASSERT_TRUE(standin_->Control("clear-failures"));
  ASSERT_TRUE(WaitFor([&] { return informer->lists() >= 2; }, absl::Seconds(60)))
      << standin_->Requests();
  ASSERT_TRUE(SawEvents(6));
  std::vector<std::string> events = Events();
  std::vector<std::string> relist(events.begin() + 3, events.end());
  std::sort(relist.begin(), relist.end());
  EXPECT_EQ(relist,
            (std::vector<std::string>{"ADDED new", "DELETED goes", "MODIFIED changes"}));
}

TEST_F(InformerTest, ResumesFromTheLastEventWhenTheServerEndsTheWatch) {
  std::unique_ptr<Informer> informer = Watch();
  ASSERT_TRUE(WaitFor([&] { return informer->synced(); }, absl::Seconds(20)));
  Put("a", "1");
  ASSERT_TRUE(SawEvents(1));
  ASSERT_TRUE(standin_->Control("close-watches"));
  Put("b", "1");
  ASSERT_TRUE(SawEvents(2));
  EXPECT_EQ(Events(), (std::vector<std::string>{"ADDED a", "ADDED b"}));
  EXPECT_EQ(informer->lists(), 1u);  // resumed, not listed again
}

TEST_F(InformerTest, BookmarksMoveItsResourceVersionOn) {
  std::unique_ptr<Informer> informer = Watch();
  ASSERT_TRUE(WaitFor([&] { return informer->synced(); }, absl::Seconds(20)));
  const std::string listed = informer->resource_version();
  ASSERT_EQ(
      standin_->Call("POST", "/api/v1/namespaces", R"({"metadata":{"name":"other"}})")
          ->status,
      201);
  ASSERT_TRUE(WaitFor(
      [&] {
        standin_->Control("bookmark");
        return informer->resource_version() != listed;
      },
      absl::Seconds(20)));
  EXPECT_GT(std::stoll(informer->resource_version()), std::stoll(listed));
  EXPECT_TRUE(Events().empty());  // a bookmark is no change
}

}  // namespace
}  // namespace tandem::controlplane
