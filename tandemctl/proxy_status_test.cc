#include "tandemctl/proxy_status.h"

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace tandem::tandemctl {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1800000000);  // 2027-01-15T08:00:00Z

TEST(ProxyStatusTest, ParsesEveryFieldAndSortsByNode) {
  absl::StatusOr<std::vector<ProxyStatus>> streams = ParseProxyStatus(R"({"streams":[
    {"node":"b","spiffe_id":"spiffe://cluster.local/ns/shop/sa/b","sent_version":"v2",
     "acked_version":"v1","nacked_version":"v2","last_nack_error":"bad","proxy_name":
     "tandem-proxy","proxy_version":"0.1.0","agent_version":"0.1.0","cert_serial":"ab",
     "cert_not_after":"2027-01-15T08:01:30Z","connected_since":"x","future":1},
    {"node":"a","spiffe_id":"spiffe://cluster.local/ns/shop/sa/a"}]})");
  ASSERT_TRUE(streams.ok()) << streams.status();
  ASSERT_EQ(streams->size(), 2u);
  EXPECT_EQ((*streams)[0].node, "a");
  const ProxyStatus& b = (*streams)[1];
  EXPECT_EQ(b.spiffe_id, "spiffe://cluster.local/ns/shop/sa/b");
  EXPECT_EQ(b.last_nack_error, "bad");
  EXPECT_EQ(b.proxy_version, "0.1.0");
  EXPECT_EQ(b.agent_version, "0.1.0");
  EXPECT_EQ(b.cert_serial, "ab");
  EXPECT_EQ(b.cert_not_after, kNow + absl::Seconds(90));
  EXPECT_EQ((*streams)[0].cert_not_after, absl::InfinitePast());
}

TEST(ProxyStatusTest, NoStreamsIsAnEmptyList) {
  ASSERT_TRUE(ParseProxyStatus("{}").ok());
  EXPECT_TRUE(ParseProxyStatus("{}")->empty());
}

TEST(ProxyStatusTest, RefusesMalformedInputNamingWhat) {
  EXPECT_EQ(ParseProxyStatus("not json").status().message(),
            "policy streams: not a JSON object");
  EXPECT_EQ(ParseProxyStatus(R"({"streams":{}})").status().message(),
            "policy streams: \"streams\" is not an array");
  EXPECT_EQ(ParseProxyStatus(R"({"streams":[7]})").status().message(),
            "policy streams: stream 0 is not an object");
  EXPECT_EQ(ParseProxyStatus(R"({"streams":[{"node":3}]})").status().message(),
            "policy streams: stream 0: node is not a string");
  absl::Status bad_time =
      ParseProxyStatus(R"({"streams":[{"cert_not_after":"soon"}]})").status();
  EXPECT_EQ(bad_time.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(
      bad_time.message(), "policy streams: stream 0: cert_not_after \"soon\" is not RFC"))
      << bad_time;
}

TEST(ProxyStatusTest, PolicyStateFollowsTheAnswerToTheVersionSent) {
  ProxyStatus s;
  EXPECT_EQ(PolicyState(s), "NOT SENT");
  s.sent_version = "v2";
  EXPECT_EQ(PolicyState(s), "SENT");
  s.acked_version = "v2";
  EXPECT_EQ(PolicyState(s), "ACKED");
  s.acked_version = "v1";
  s.nacked_version = "v2";
  EXPECT_EQ(PolicyState(s), "NACKED");
  s.sent_version = "v3";  // a newer version, not answered yet
  EXPECT_EQ(PolicyState(s), "SENT");
}

TEST(ProxyStatusTest, FormatsOneAlignedLinePerProxyWithTheNackError) {
  ProxyStatus ok;
  ok.node = "client-7f9c";
  ok.spiffe_id = "spiffe://cluster.local/ns/shop/sa/client";
  ok.sent_version = ok.acked_version = "aaaa";
  ok.proxy_name = "tandem-proxy";
  ok.proxy_version = ok.agent_version = "0.1.0";
  ok.cert_serial = "1f";
  ok.cert_not_after = kNow + absl::Seconds(90);
  ProxyStatus nack;
  nack.node = "server";
  nack.spiffe_id = "spiffe://cluster.local/ns/shop/sa/server";
  nack.sent_version = nack.nacked_version = "bbbb";
  nack.acked_version = "aaaa";
  nack.last_nack_error = "no roots\nfor trust domain \x1b[31mx";
  nack.agent_version = "0.1.0";
  std::vector<std::string> lines =
      absl::StrSplit(FormatProxyStatus({ok, nack}, kNow), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "NAME         IDENTITY                                  CERT SERIAL  "
            "CERT EXPIRES                     AGENT  PROXY               POLICY");
  EXPECT_EQ(lines[1],
            "client-7f9c  spiffe://cluster.local/ns/shop/sa/client  1f           "
            "2027-01-15T08:01:30Z (in 1m30s)  0.1.0  tandem-proxy 0.1.0  ACKED aaaa");
  // Control characters from the proxy become spaces; no proxy on the agent's relay.
  EXPECT_EQ(lines[2],
            "server       spiffe://cluster.local/ns/shop/sa/server  -            -      "
            "                          0.1.0  not connected       NACKED bbbb (in force:"
            " aaaa): no roots for trust domain  [31mx");
}

TEST(ProxyStatusTest, UntilSaysHowLongBeforeOrAfter) {
  EXPECT_EQ(Until(kNow + absl::Seconds(61), kNow), "in 1m1s");
  EXPECT_EQ(Until(kNow - absl::Seconds(3), kNow), "3s ago");
  EXPECT_EQ(Until(absl::InfinitePast(), kNow), "-");
}

}  // namespace
}  // namespace tandem::tandemctl
