#include "agent/app_probe_spec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::agent {
namespace {

TEST(ParseAppProbesTest, ReadsEachProbeKind) {
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(R"({
    "/app-health/web/readyz": {"httpGet": {"path": "/ready?full=1", "port": 8080,
        "scheme": "HTTP", "host": "",
        "httpHeaders": [{"name": "X-Probe", "value": "1"}, {"name": "Host", "value": "web"}]},
      "timeoutSeconds": 3},
    "/app-health/web/livez": {"tcpSocket": {"port": 8081}, "timeoutSeconds": 1},
    "/app-health/web-2/startupz": {"grpc": {"port": 9000, "service": "shop.Cart"}},
    "/app-health/tls/readyz": {"httpGet": {"port": 8443, "scheme": "HTTPS", "host": "::1"}}
  })");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->size(), 4u);

  const AppProbeSpec& ready = table->at("/app-health/web/readyz");
  EXPECT_EQ(ready.kind, AppProbeSpec::Kind::kHttpGet);
  EXPECT_EQ(ready.container, "web");
  EXPECT_EQ(ready.probe, "readyz");
  EXPECT_EQ(ready.host, "127.0.0.1");
  EXPECT_EQ(ready.port, 8080);
  EXPECT_EQ(ready.path, "/ready?full=1");
  EXPECT_FALSE(ready.https);
  EXPECT_EQ(ready.timeout, absl::Seconds(3));
  ASSERT_EQ(ready.headers.size(), 2u);
  EXPECT_EQ(ready.headers[0], (std::pair<std::string, std::string>{"X-Probe", "1"}));
  EXPECT_EQ(ready.headers[1], (std::pair<std::string, std::string>{"Host", "web"}));

  const AppProbeSpec& live = table->at("/app-health/web/livez");
  EXPECT_EQ(live.kind, AppProbeSpec::Kind::kTcpSocket);
  EXPECT_EQ(live.host, "127.0.0.1");
  EXPECT_EQ(live.port, 8081);
  EXPECT_EQ(live.timeout, absl::Seconds(1));

  const AppProbeSpec& startup = table->at("/app-health/web-2/startupz");
  EXPECT_EQ(startup.kind, AppProbeSpec::Kind::kGrpc);
  EXPECT_EQ(startup.container, "web-2");
  EXPECT_EQ(startup.probe, "startupz");
  EXPECT_EQ(startup.port, 9000);
  EXPECT_EQ(startup.grpc_service, "shop.Cart");
  EXPECT_EQ(startup.timeout, absl::Seconds(1));  // the kubelet's default

  const AppProbeSpec& tls = table->at("/app-health/tls/readyz");
  EXPECT_TRUE(tls.https);
  EXPECT_EQ(tls.host, "::1");
  EXPECT_EQ(tls.path, "/");
}

TEST(ParseAppProbesTest, FillsDefaultsAsTheKubeletDoes) {
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(R"({
    "/app-health/a/livez": {"httpGet": {"port": 80, "path": "healthz#top",
                                        "host": "[::1]", "httpHeaders": null},
                            "timeoutSeconds": 0},
    "/app-health/a/readyz": {"tcpSocket": {"port": 80, "host": "localhost"}},
    "/app-health/a/startupz": {"grpc": {"port": 80}}
  })");
  ASSERT_TRUE(table.ok()) << table.status();
  const AppProbeSpec& live = table->at("/app-health/a/livez");
  EXPECT_EQ(live.path, "/healthz");  // a leading '/', no fragment
  EXPECT_EQ(live.host, "::1");
  EXPECT_EQ(live.timeout, absl::Seconds(1));  // 0 is unset
  EXPECT_TRUE(live.headers.empty());
  EXPECT_EQ(table->at("/app-health/a/readyz").host, "127.0.0.1");
  EXPECT_EQ(table->at("/app-health/a/startupz").grpc_service, "");
}

TEST(ParseAppProbesTest, AcceptsAnEmptyTable) {
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(" {} ");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->empty());
}

TEST(ParseAppProbesTest, RefusesMalformedInputNamingPathAndField) {
  struct Case {
    std::string json;
    std::string error;
  };
  const std::string p = R"("/app-health/web/readyz": )";
  for (
      const Case& c : std::vector<Case>{
          {"",
           "not JSON: parse error at line 1, column 1: syntax error while parsing value "
           "- unexpected end of input; expected '[', '{', or a literal"},
          {R"({"/app-health/web/readyz": {"tcpSocket": {"port": 1}},})",
           "not JSON: parse error at line 1, column 55: syntax error while parsing "
           "object "
           "key - unexpected '}'; expected string literal"},
          {"[]", "must be a JSON object from path to probe"},
          {R"({"a": {}, "a": {}})", "duplicate key \"a\""},
          {R"({"/app-health/web/readyz": {"httpGet": {"port": 1, "httpHeaders":
                [{"name": "X", "value": "1", "value": "2"}]}}})",
           "duplicate key \"value\""},
          {R"({"/app-health/web/readyz": {"httpGet": {"port": 1, "httpHeaders":
                [{"name": "X", "value": {"deeper": 1}}]}}})",
           "nested deeper than 5 levels"},
          {R"({"/healthz": {"tcpSocket": {"port": 1}}})",
           "\"/healthz\": not a path /app-health/<container>/<livez|readyz|startupz>"},
          {R"({"/app-health/Web/readyz": {"tcpSocket": {"port": 1}}})",
           "\"/app-health/Web/readyz\": not a path"},
          {R"({"/app-health/web/ready": {"tcpSocket": {"port": 1}}})",
           "\"/app-health/web/ready\": not a path"},
          {R"({"/app-health/web/x/readyz": {"tcpSocket": {"port": 1}}})",
           "\"/app-health/web/x/readyz\": not a path"},
          {R"({"/app-health/-web/readyz": {"tcpSocket": {"port": 1}}})",
           "\"/app-health/-web/readyz\": not a path"},
          {"{" + p + "1}", p + "must be an object"},
          {"{" + p + "{}}", p + "needs exactly one of httpGet, tcpSocket, grpc"},
          {"{" + p + R"({"tcpSocket": {"port": 1}, "grpc": {"port": 1}}})",
           p + "needs exactly one of httpGet, tcpSocket, grpc"},
          {"{" + p + R"({"exec": {"command": ["true"]}}})", p + "exec: unknown field"},
          {"{" + p + R"({"tcpSocket": []}})", p + "tcpSocket: must be an object"},
          {"{" + p + R"({"tcpSocket": {}}})", p + "tcpSocket.port: required"},
          {"{" + p + R"({"tcpSocket": {"port": "http"}}})",
           p + "tcpSocket.port: must be an integer 1..65535"},
          {"{" + p + R"({"tcpSocket": {"port": 0}}})",
           p + "tcpSocket.port: must be an integer 1..65535"},
          {"{" + p + R"({"tcpSocket": {"port": 65536}}})",
           p + "tcpSocket.port: must be an integer 1..65535"},
          {"{" + p + R"({"tcpSocket": {"port": 80.5}}})",
           p + "tcpSocket.port: must be an integer 1..65535"},
          {"{" + p + R"({"tcpSocket": {"port": 18446744073709551615}}})",
           p + "tcpSocket.port: must be an integer 1..65535"},
          {"{" + p + R"({"tcpSocket": {"port": 80, "host": "db.local"}}})",
           p + "tcpSocket.host: must be empty or an IP address (names are not resolved)"},
          {"{" + p + R"({"tcpSocket": {"port": 80, "hots": ""}}})",
           p + "tcpSocket.hots: unknown field"},
          {"{" + p + R"({"httpGet": {"port": 80, "scheme": "http"}}})",
           p + "httpGet.scheme: must be HTTP or HTTPS"},
          {"{" + p + R"({"httpGet": {"port": 80, "path": "/a b"}}})",
           p + "httpGet.path: must be printable ASCII without spaces"},
          {"{" + p + R"({"httpGet": {"port": 80, "path": 7}}})",
           p + "httpGet.path: must be a string"},
          {"{" + p + R"({"httpGet": {"port": 80, "httpHeaders": {}}}})",
           p + "httpGet.httpHeaders: must be an array"},
          {"{" + p + R"({"httpGet": {"port": 80, "httpHeaders": [1]}}})",
           p + "httpGet.httpHeaders[0]: must be an object"},
          {"{" + p +
               R"({"httpGet": {"port": 80, "httpHeaders": [{"name": "A", "value": ""},
                                                           {"name": "B C", "value": ""}]}}})",
           p + "httpGet.httpHeaders[1].name: must be an HTTP token"},
          {"{" + p + R"({"httpGet": {"port": 80, "httpHeaders": [{"value": "x"}]}}})",
           p + "httpGet.httpHeaders[0].name: must be an HTTP token"},
          {"{" + p +
               R"({"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nEvil: 1"}]}}})",
           p + "httpGet.httpHeaders[0].value: must not hold CR, LF or NUL"},
          {"{" + p +
               R"({"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "valeu": "1"}]}}})",
           p + "httpGet.httpHeaders[0].valeu: unknown field"},
          {"{" + p + R"({"grpc": {"port": 80, "service": 1}}})",
           p + "grpc.service: must be a string"},
          {"{" + p + R"({"grpc": {"port": 80}, "timeoutSeconds": -1}})",
           p + "timeoutSeconds: must be an integer 0..2147483647"},
          {"{" + p + R"({"grpc": {"port": 80}, "timeoutSeconds": "1s"}})",
           p + "timeoutSeconds: must be an integer 0..2147483647"},
          {"{" + p + R"({"grpc": {"port": 80}, "periodSeconds": 10}})",
           p + "periodSeconds: unknown field"},
      }) {
    absl::StatusOr<AppProbeTable> table = ParseAppProbes(c.json);
    ASSERT_FALSE(table.ok()) << c.json;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    std::string said(table.status().message());
    EXPECT_EQ(said.substr(0, c.error.size()), c.error) << c.json << "\n  said: " << said;
  }
}

TEST(ParseAppProbesTest, EscapesWhatItQuotes) {
  absl::StatusOr<AppProbeTable> table = ParseAppProbes(R"({"/x\n\u0000": {}})");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(std::string(table.status().message()),
            "\"/x\\n\\x00\": not a path /app-health/<container>/<livez|readyz|startupz>");
}

}  // namespace
}  // namespace tandem::agent
