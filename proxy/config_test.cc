#include "proxy/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proxy/mesh_policy.h"

namespace tandem::proxy {
namespace {

void ExpectRefused(const std::string& json, const std::string& field) {
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig(json);
  ASSERT_FALSE(o.ok()) << json;
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(o.status().message()).find(field), std::string::npos)
      << o.status();
}

TEST(ProxyConfigTest, AppliesSecureDefaults) {
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig("{}");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->outbound.port(), 15001);
  EXPECT_EQ(o->inbound.port(), 15006);
  EXPECT_EQ(o->admin.text, "127.0.0.1:15000");
  EXPECT_EQ(o->policy.default_inbound_mode, InboundMode::kStrict);
  EXPECT_FALSE(o->policy_from_agent);
  EXPECT_FALSE(o->allow_tls12);
  EXPECT_EQ(o->socket_mark, 1337u);
}

TEST(ProxyConfigTest, ListensDualStackByDefaultWhereTheKernelHasIpv6) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  bool has_ipv6 = probe >= 0;
  if (has_ipv6) close(probe);
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig("{}");
  ASSERT_TRUE(o.ok()) << o.status();
  const char* any = has_ipv6 ? "[::]" : "0.0.0.0";
  EXPECT_EQ(o->outbound.text, absl::StrCat(any, ":15001"));
  EXPECT_EQ(o->inbound.text, absl::StrCat(any, ":15006"));
  EXPECT_EQ(o->metrics.text, absl::StrCat(any, ":15090"));
  EXPECT_EQ(o->health.text, absl::StrCat(any, ":15021"));
  EXPECT_TRUE(o->outbound.is_wildcard());
  EXPECT_FALSE(SocketAddress::Parse("[::1]:1")->is_wildcard());
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1:1")->is_wildcard());
  EXPECT_TRUE(SocketAddress::Parse("0.0.0.0:1")->is_wildcard());
}

TEST(ProxyConfigTest, SendsInboundToTheLoopbackOfTheConnectionsFamily) {
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig("{}");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(AppAddress(*o, *SocketAddress::Parse("10.77.0.12:8080")).text,
            "127.0.0.1:8080");
  EXPECT_EQ(AppAddress(*o, *SocketAddress::Parse("[fd77:77::12]:8080")).text,
            "[::1]:8080");
}

TEST(ProxyConfigTest, SendsInboundToTheConfiguredAppHostOrFixedApp) {
  for (const char* host : {"::1", "[::1]"}) {
    absl::StatusOr<ProxyOptions> o =
        ParseProxyConfig(absl::StrCat(R"({"app_host": ")", host, R"("})"));
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->app_host.text, host);
    EXPECT_EQ(AppAddress(*o, *SocketAddress::Parse("10.0.0.1:80")).text, "[::1]:80");
  }
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig(R"({"app_host": "10.1.1.1"})");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(AppAddress(*o, *SocketAddress::Parse("[fd00::1]:81")).text, "10.1.1.1:81");
  o = ParseProxyConfig(R"({"app_host": "10.1.1.1", "inbound_fixed_app": "[::1]:9"})");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(AppAddress(*o, *SocketAddress::Parse("10.0.0.1:80")).text, "[::1]:9");
}

TEST(SocketAddressTest, ReadsIpv4MappedAddressesAsIpv4) {
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  mapped.sin6_port = htons(8080);
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:10.77.0.12", &mapped.sin6_addr), 1);
  SocketAddress a =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&mapped), sizeof(mapped));
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  EXPECT_EQ(a.text, "10.77.0.12:8080");
  ASSERT_EQ(inet_pton(AF_INET6, "fd77:77::12", &mapped.sin6_addr), 1);
  a = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&mapped), sizeof(mapped));
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.text, "[fd77:77::12]:8080");
}

TEST(ProxyConfigTest, ParsesPoliciesAndMeshRanges) {
  absl::StatusOr<ProxyOptions> o = ParseProxyConfig(R"({
    "mesh_cidrs": ["10.0.0.0/8", "fd00::/8"],
    "outbound_excluded_ports": [22],
    "inbound_ports": [{"port": 8080, "mode": "PERMISSIVE",
                       "allowed_identities": ["spiffe://cluster.local/ns/a/*"]}],
    "expected_identities": [{"destination": "10.1.2.3:80",
                             "spiffe_id": "spiffe://cluster.local/ns/b/sa/c"}],
    "socketMark": 0
  })");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->socket_mark, 0u);
  std::shared_ptr<const MeshPolicy> p = MeshPolicy::FromConfigRules(o->policy);
  EXPECT_EQ(p->source(), "config file");
  EXPECT_TRUE(p->IsMeshed(*SocketAddress::Parse("10.9.9.9:443")));
  EXPECT_FALSE(p->IsMeshed(*SocketAddress::Parse("192.168.1.1:443")));
  EXPECT_FALSE(p->IsMeshed(*SocketAddress::Parse("10.9.9.9:22")));
  EXPECT_TRUE(p->IsMeshed(*SocketAddress::Parse("[fd00::1]:80")));
  EXPECT_EQ(p->InboundPolicy(8080).mode, InboundMode::kPermissive);
  EXPECT_EQ(p->InboundPolicy(9090).mode, InboundMode::kStrict);
  EXPECT_EQ(p->ExpectedIdentity(*SocketAddress::Parse("10.1.2.3:80")),
            "spiffe://cluster.local/ns/b/sa/c");
  EXPECT_TRUE(IdentityAllowed(p->InboundPolicy(8080).allowed_identities,
                              "spiffe://cluster.local/ns/a/sa/x"));
  EXPECT_FALSE(IdentityAllowed(p->InboundPolicy(8080).allowed_identities,
                               "spiffe://cluster.local/ns/ab/sa/x"));
}

TEST(ProxyConfigTest, RefusesEachInvalidFieldByName) {
  ExpectRefused("{not json", "config");
  ExpectRefused(R"({"no_such_field": 1})", "no_such_field");
  ExpectRefused(R"({"trust_domain": "Bad Domain"})", "trust_domain");
  ExpectRefused(R"({"outbound_address": "nowhere"})", "outbound_address");
  ExpectRefused(R"({"admin_address": "0.0.0.0:15000"})", "admin_address");
  ExpectRefused(R"({"mesh_cidrs": ["10.0.0.0/40"]})", "mesh_cidrs[0]");
  ExpectRefused(R"({"inbound_ports": [{"port": 0}]})", "inbound_ports[0].port");
  ExpectRefused(R"({"inbound_ports": [{"port": 80, "mode": "LOOSE"}]})", "mode");
  ExpectRefused(R"({"inbound_ports": [{"port": 80, "allowed_identities": ["x"]}]})",
                "inbound_ports[0].allowed_identities[0]");
  ExpectRefused(R"({"expected_identities": [{"destination": "1.2.3.4:5",
                   "spiffe_id": "nope"}]})",
                "expected_identities[0].spiffe_id");
  ExpectRefused(R"({"buffer_bytes": 10})", "buffer_bytes");
  ExpectRefused(R"({"connect_timeout_ms": 1})", "connect_timeout_ms");
  ExpectRefused(R"({"cert_chain_file": "/x"})", "private_key_file");
  ExpectRefused(R"({"workers": 1000})", "workers");
  ExpectRefused(R"({"app_host": "app.local"})", "app_host: must be an IP address");
  ExpectRefused(R"({"app_host": "[::1"})", "app_host: must be an IP address");
  // Above INT_MAX these used to turn negative (fuzz_proxy_config checks for it).
  ExpectRefused(R"({"workers": 4294967295})", "workers");
  ExpectRefused(R"({"max_connections": 4294967295})", "max_connections");
  ExpectRefused(R"({"policy_from_agent": true})", "policy_from_agent");
  ExpectRefused(R"({"inbound_ports": [{"port": 80, "allowed_identities":
                   ["spiffe://other.org/ns/a/sa/b"]}]})",
                "no roots for trust domain \"other.org\"");
}

}  // namespace
}  // namespace tandem::proxy
