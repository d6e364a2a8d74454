#include "proxy/mesh_policy.h"

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proxy/mesh_policy_holder.h"
#include "tandem/mesh_policy.pb.h"

namespace tandem::proxy {
namespace {

using policy::v1::Revocation;
using policy::v1::WorkloadPolicy;

constexpr char kDomain[] = "cluster.local";
constexpr char kClient[] = "spiffe://cluster.local/ns/shop/sa/client";
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

absl::StatusOr<std::shared_ptr<const MeshPolicy>> Build(const WorkloadPolicy& pb) {
  return MeshPolicy::FromProto(pb, "v1", kDomain, kNow);
}

SocketAddress Address(const std::string& text) { return *SocketAddress::Parse(text); }

Revocation* AddRevocation(WorkloadPolicy& pb, absl::Duration expires_in) {
  Revocation* r = pb.add_revocations();
  r->set_expires_unix_seconds(absl::ToUnixSeconds(kNow + expires_in));
  return r;
}

// Expects `pb` refused with kInvalidArgument and a message containing `what`.
void ExpectRefused(const WorkloadPolicy& pb, const std::string& what) {
  absl::StatusOr<std::shared_ptr<const MeshPolicy>> p = Build(pb);
  ASSERT_FALSE(p.ok()) << pb.DebugString();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(p.status().message()).find(what), std::string::npos)
      << p.status();
}

TEST(MeshPolicyTest, CompilesEveryRuleFromTheControlPlane) {
  WorkloadPolicy pb;
  pb.add_mesh_cidrs("10.0.0.0/8");
  pb.add_outbound_excluded_ports(22);
  pb.set_default_inbound_mode(config::PERMISSIVE);
  config::InboundPort* port = pb.add_inbound_ports();
  port->set_port(8080);
  port->set_mode(config::STRICT);
  port->add_allowed_identities(kClient);
  config::ExpectedIdentity* e = pb.add_expected_identities();
  e->set_destination("10.1.2.3:80");
  e->set_spiffe_id("spiffe://cluster.local/ns/shop/sa/server");

  absl::StatusOr<std::shared_ptr<const MeshPolicy>> p = Build(pb);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->version(), "v1");
  EXPECT_EQ((*p)->source(), "control plane");
  EXPECT_TRUE((*p)->IsMeshed(Address("10.2.3.4:443")));
  EXPECT_FALSE((*p)->IsMeshed(Address("10.2.3.4:22")));
  EXPECT_FALSE((*p)->IsMeshed(Address("192.168.0.1:443")));
  EXPECT_EQ((*p)->InboundPolicy(8080).mode, InboundMode::kStrict);
  EXPECT_EQ((*p)->InboundPolicy(9090).mode, InboundMode::kPermissive);
  EXPECT_TRUE(IdentityAllowed((*p)->InboundPolicy(8080).allowed_identities, kClient));
  EXPECT_FALSE(IdentityAllowed((*p)->InboundPolicy(8080).allowed_identities,
                               "spiffe://cluster.local/ns/shop/sa/other"));
  EXPECT_EQ((*p)->ExpectedIdentity(Address("10.1.2.3:80")),
            "spiffe://cluster.local/ns/shop/sa/server");
  EXPECT_EQ((*p)->ExpectedIdentity(Address("10.1.2.3:81")), "");
  std::string json = (*p)->ToJson();
  EXPECT_NE(json.find("\"version\": \"v1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"mesh_cidrs\": [\"10.0.0.0/8\"]"), std::string::npos) << json;
}

TEST(MeshPolicyTest, EmptyPolicyMeshesEverythingAndAllowsEveryone) {
  absl::StatusOr<std::shared_ptr<const MeshPolicy>> p = Build(WorkloadPolicy());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->IsMeshed(Address("192.168.0.1:443")));
  EXPECT_EQ((*p)->InboundPolicy(80).mode, InboundMode::kStrict);
  EXPECT_TRUE(IdentityAllowed((*p)->InboundPolicy(80).allowed_identities, kClient));
  EXPECT_EQ((*p)->FindRevocation("1f", kClient, kNow), nullptr);
}

TEST(MeshPolicyTest, MatchesAllowListWildcardsOnPathBoundaries) {
  std::vector<std::string> allowed = {"spiffe://cluster.local/ns/shop/*",
                                      "spiffe://cluster.local/ns/ops/sa/admin"};
  EXPECT_TRUE(IdentityAllowed(allowed, kClient));
  EXPECT_TRUE(IdentityAllowed(allowed, "spiffe://cluster.local/ns/ops/sa/admin"));
  EXPECT_FALSE(IdentityAllowed(allowed, "spiffe://cluster.local/ns/shopping/sa/x"));
  EXPECT_FALSE(IdentityAllowed(allowed, "spiffe://cluster.local/ns/ops/sa/admin2"));
  EXPECT_TRUE(IdentityAllowed({}, kClient));
}

TEST(MeshPolicyTest, RefusesEachRuleItCannotApplyNamingTheField) {
  WorkloadPolicy pb;
  pb.add_mesh_cidrs("10.0.0.0/33");
  ExpectRefused(pb, "policy field mesh_cidrs[0]");

  pb.Clear();
  pb.add_outbound_excluded_ports(70000);
  ExpectRefused(pb, "outbound_excluded_ports[0]");

  pb.Clear();
  pb.add_inbound_ports()->set_port(0);
  ExpectRefused(pb, "inbound_ports[0].port");

  pb.Clear();
  config::InboundPort* port = pb.add_inbound_ports();
  port->set_port(80);
  port->add_allowed_identities("not-a-spiffe-id");
  ExpectRefused(pb, "inbound_ports[0].allowed_identities[0]");

  pb.Clear();
  config::ExpectedIdentity* e = pb.add_expected_identities();
  e->set_destination("somewhere");
  e->set_spiffe_id(kClient);
  ExpectRefused(pb, "expected_identities[0].destination");

  pb.Clear();
  AddRevocation(pb, absl::Hours(1));  // no target
  ExpectRefused(pb, "revocations[0]: names neither serial_hex nor spiffe_id");

  pb.Clear();
  AddRevocation(pb, absl::Hours(1))->set_serial_hex("0A1B");
  ExpectRefused(pb, "revocations[0].serial_hex");

  pb.Clear();
  AddRevocation(pb, absl::Hours(1))->set_serial_hex("01b");
  ExpectRefused(pb, "revocations[0].serial_hex");

  pb.Clear();
  pb.add_revocations()->set_serial_hex("1b");
  ExpectRefused(pb, "revocations[0].expires_unix_seconds");

  pb.Clear();
  AddRevocation(pb, absl::Hours(1))->set_spiffe_id("https://cluster.local/ns/a");
  ExpectRefused(pb, "revocations[0].spiffe_id");
}

TEST(MeshPolicyTest, RefusesIdentitiesOfAnotherTrustDomain) {
  WorkloadPolicy pb;
  config::InboundPort* port = pb.add_inbound_ports();
  port->set_port(80);
  port->add_allowed_identities("spiffe://other.org/ns/*");
  ExpectRefused(pb, "this proxy has no roots for trust domain \"other.org\"");

  pb.Clear();
  config::ExpectedIdentity* e = pb.add_expected_identities();
  e->set_destination("10.0.0.1:80");
  e->set_spiffe_id("spiffe://other.org/ns/a/sa/b");
  ExpectRefused(pb, "no roots for trust domain \"other.org\"");

  pb.Clear();
  AddRevocation(pb, absl::Hours(1))->set_spiffe_id("spiffe://other.org/ns/a/sa/b");
  ExpectRefused(pb, "revocations[0].spiffe_id: this proxy has no roots");
}

TEST(MeshPolicyTest, RevokesBySerialOrIdentityUntilExpiry) {
  WorkloadPolicy pb;
  Revocation* by_serial = AddRevocation(pb, absl::Minutes(10));
  by_serial->set_serial_hex("1a2b");
  by_serial->set_reason("key leaked");
  Revocation* by_id = AddRevocation(pb, absl::Hours(1));
  by_id->set_spiffe_id(kClient);
  by_id->set_close_open_connections(true);
  AddRevocation(pb, -absl::Seconds(1))->set_serial_hex("dead");  // already expired

  absl::StatusOr<std::shared_ptr<const MeshPolicy>> p = Build(pb);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->revocations().size(), 2u);  // the expired one is dropped
  EXPECT_TRUE((*p)->ClosesOpenConnections());

  const RevocationEntry* r =
      (*p)->FindRevocation("1a2b", "spiffe://cluster.local/ns/x/sa/y", kNow);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->reason, "key leaked");
  EXPECT_FALSE(r->close_open_connections);
  r = (*p)->FindRevocation("ffff", kClient, kNow);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->close_open_connections);
  EXPECT_EQ((*p)->FindRevocation("dead", "spiffe://cluster.local/ns/x/sa/y", kNow),
            nullptr);
  EXPECT_EQ((*p)->FindRevocation("ffff", "spiffe://cluster.local/ns/x/sa/y", kNow),
            nullptr);

  // Each entry ends at its own expiry.
  absl::Time later = kNow + absl::Minutes(11);
  EXPECT_EQ((*p)->FindRevocation("1a2b", "spiffe://cluster.local/ns/x/sa/y", later),
            nullptr);
  EXPECT_NE((*p)->FindRevocation("ffff", kClient, later), nullptr);
  EXPECT_EQ((*p)->FindRevocation("ffff", kClient, kNow + absl::Hours(2)), nullptr);
}

TEST(MeshPolicyTest, APeerNamedTwiceIsClosedIfEitherEntrySaysSo) {
  // The serial's entry comes first and would leave open connections alone; the
  // identity's entry asks to close them, and must win whatever the order.
  WorkloadPolicy pb;
  AddRevocation(pb, absl::Hours(1))->set_serial_hex("1a2b");
  AddRevocation(pb, absl::Hours(1))->set_spiffe_id(kClient);
  pb.mutable_revocations(1)->set_close_open_connections(true);
  absl::StatusOr<std::shared_ptr<const MeshPolicy>> p = Build(pb);
  ASSERT_TRUE(p.ok()) << p.status();
  const RevocationEntry* r = (*p)->FindRevocation("1a2b", kClient, kNow);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->close_open_connections);
  // The serial alone still names the peer, without closing.
  r = (*p)->FindRevocation("1a2b", "spiffe://cluster.local/ns/x/sa/y", kNow);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->close_open_connections);
}

TEST(MeshPolicyHolderTest, PublishesNewPolicyWhileOldSnapshotsStayValid) {
  MeshPolicyHolder holder(MeshPolicy::FromConfigRules(MeshRules()));
  std::shared_ptr<const MeshPolicy> before = holder.Current();
  WorkloadPolicy pb;
  pb.add_mesh_cidrs("10.0.0.0/8");
  holder.Publish(*Build(pb));
  EXPECT_EQ(holder.Current()->version(), "v1");
  EXPECT_EQ(before->source(), "config file");
  EXPECT_TRUE(before->IsMeshed(Address("192.168.0.1:80")));
  EXPECT_FALSE(holder.Current()->IsMeshed(Address("192.168.0.1:80")));
}

}  // namespace
}  // namespace tandem::proxy
