#include "controlplane/kube/watch_event_parser.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

constexpr char kAdded[] =
    R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a","namespace":"n","resourceVersion":"7"},"data":{"k":"v"}}})";
constexpr char kBookmark[] =
    R"({"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"12"}}})";
constexpr char kExpired[] =
    R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}})j";

TEST(WatchEventParserTest, ParsesEachEventType) {
  absl::StatusOr<WatchEvent> added = ParseWatchEvent(kAdded);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->type, WatchEvent::Type::kAdded);
  EXPECT_EQ(added->resource_version, "7");
  EXPECT_EQ(added->object["data"]["k"], "v");
  absl::StatusOr<WatchEvent> bookmark = ParseWatchEvent(kBookmark);
  ASSERT_TRUE(bookmark.ok()) << bookmark.status();
  EXPECT_EQ(bookmark->type, WatchEvent::Type::kBookmark);
  EXPECT_EQ(bookmark->resource_version, "12");
  absl::StatusOr<WatchEvent> expired = ParseWatchEvent(kExpired);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->type, WatchEvent::Type::kError);
  EXPECT_EQ(expired->code, 410);
  EXPECT_EQ(expired->reason, "Expired");
  EXPECT_EQ(expired->message, "too old resource version: 1 (5)");
  for (const char* type : {"MODIFIED", "DELETED"}) {
    absl::StatusOr<WatchEvent> e =
        ParseWatchEvent(std::string(R"({"type":")") + type +
                        R"(","object":{"metadata":{"name":"a","resourceVersion":"8"}}})");
    ASSERT_TRUE(e.ok()) << e.status();
  }
}

TEST(WatchEventParserTest, RefusesMalformedEvents) {
  struct Case {
    std::string json, error;
  } cases[] = {
      {"[1]", "watch event: not a JSON object"},
      {"{", "watch event: not a JSON object"},
      {R"({"type":"EXPLODED","object":{}})", "watch event: unknown type \"EXPLODED\""},
      {R"({"type":"ADDED"})", "watch event: no \"object\" object"},
      {R"({"type":"ADDED","object":[]})", "watch event: no \"object\" object"},
      {R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})",
       "watch event ADDED: no metadata.resourceVersion"},
      {R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":"3"}}})",
       "watch event MODIFIED: no metadata.name"},
      {std::string(100, '[') + std::string(100, ']'),
       "watch event: nested deeper than 64"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<WatchEvent> e = ParseWatchEvent(c.json);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_EQ(e.status().message(), c.error) << c.json;
  }
}

TEST(WatchEventParserTest, SplitsLinesFedInAnyPieces) {
  const std::string stream =
      std::string(kAdded) + "\n" + kBookmark + "\n\n" + kExpired + "\n";
  WatchEventParser parser;
  std::vector<WatchEvent> events;
  for (char c : stream) ASSERT_TRUE(parser.Feed(std::string(1, c), &events).ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kAdded);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kBookmark);
  EXPECT_EQ(events[2].type, WatchEvent::Type::kError);
}

TEST(WatchEventParserTest, RefusesAnEventOverTheLimitAndStaysFailed) {
  WatchEventParser parser(64);
  std::vector<WatchEvent> events;
  absl::Status s = parser.Feed(std::string(100, ' '), &events);
  EXPECT_EQ(s.message(), "watch stream: an event over 64 bytes");
  EXPECT_EQ(parser.Feed(std::string(kBookmark) + "\n", &events).message(),
            "watch stream: already failed");
  EXPECT_TRUE(events.empty());
}

TEST(WatchEventParserTest, ReadsMetadataFields) {
  absl::StatusOr<nlohmann::json> o =
      ParseKubeObject(R"({"metadata":{"name":"x","uid":7}})");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(MetadataField(*o, "name"), "x");
  EXPECT_EQ(MetadataField(*o, "uid"), "");
  EXPECT_EQ(MetadataField(*o, "namespace"), "");
}

}  // namespace
}  // namespace tandem::controlplane
