#include "controlplane/policy/policy_file.h"

#include <string>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

using tandem::policy::v1::WorkloadPolicy;

PolicyFile ParseOrDie(const std::string& text) {
  absl::StatusOr<PolicyFile> policy = PolicyFile::Parse(text, "mesh-policy.yaml");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

std::vector<uint32_t> Ports(const WorkloadPolicy& policy) {
  std::vector<uint32_t> ports;
  for (const auto& p : policy.inbound_ports()) ports.push_back(p.port());
  return ports;
}

TEST(PolicyFileTest, ParsesTheShippedExample) {
  absl::StatusOr<std::string> text = ReadFileToString(std::string(TANDEM_SOURCE_DIR) +
                                                      "/deploy/policy/mesh-policy.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  PolicyFile policy = ParseOrDie(*text);
  EXPECT_TRUE(policy.close_open_connections());
  WorkloadPolicy payments = policy.Resolve({"shop", "payments"});
  EXPECT_EQ(Ports(payments), std::vector<uint32_t>{8443});
  ASSERT_EQ(payments.expected_identities_size(), 1);
  EXPECT_EQ(payments.expected_identities(0).spiffe_id(),
            "spiffe://cluster.local/ns/db/sa/postgres");
  EXPECT_EQ(payments.mesh_cidrs_size(), 2);
  EXPECT_EQ(payments.default_inbound_mode(), tandem::config::STRICT);
}

TEST(PolicyFileTest, MostSpecificEntryWinsFieldByField) {
  PolicyFile policy = ParseOrDie(R"(
defaults:
  meshCidrs: [10.0.0.0/8]
  inboundMode: STRICT
  inboundPorts: [{port: 1}]
  outboundExcludedPorts: [22]
workloads:
  - namespace: shop
    serviceAccount: cart
    inboundPorts: [{port: 3}]
  - namespace: shop
    inboundMode: PERMISSIVE
    inboundPorts: [{port: 2, mode: STRICT, allow: ["spiffe://cluster.local/*"]}]
    meshCidrs: []
)");
  WorkloadPolicy other = policy.Resolve({"elsewhere", "cart"});
  EXPECT_EQ(Ports(other), std::vector<uint32_t>{1});
  EXPECT_EQ(other.default_inbound_mode(), tandem::config::STRICT);
  EXPECT_EQ(other.mesh_cidrs_size(), 1);

  WorkloadPolicy shop = policy.Resolve({"shop", "web"});
  EXPECT_EQ(Ports(shop), std::vector<uint32_t>{2});
  EXPECT_EQ(shop.inbound_ports(0).mode(), tandem::config::STRICT);
  EXPECT_EQ(shop.inbound_ports(0).allowed_identities(0), "spiffe://cluster.local/*");
  EXPECT_EQ(shop.default_inbound_mode(), tandem::config::PERMISSIVE);
  EXPECT_EQ(shop.mesh_cidrs_size(), 0) << "an explicit empty list overrides";
  EXPECT_EQ(shop.outbound_excluded_ports_size(), 1) << "unset falls through";

  WorkloadPolicy cart = policy.Resolve({"shop", "cart"});
  EXPECT_EQ(Ports(cart), std::vector<uint32_t>{3}) << "service account beats namespace";
  EXPECT_EQ(cart.default_inbound_mode(), tandem::config::PERMISSIVE)
      << "the namespace entry still sets what the account entry leaves out";
}

TEST(PolicyFileTest, AcceptsJsonAndDefaultsToStrict) {
  PolicyFile policy = ParseOrDie(
      R"({"workloads": [{"namespace": "a", "expectedIdentities":
          [{"destination": "[fd00::1]:80", "spiffeId": "spiffe://other.td/x"}]}],
          "revocation": {"closeOpenConnections": false}})");
  WorkloadPolicy a = policy.Resolve({"a", "b"});
  EXPECT_EQ(a.default_inbound_mode(), tandem::config::STRICT);
  ASSERT_EQ(a.expected_identities_size(), 1);
  EXPECT_FALSE(policy.close_open_connections());
}

TEST(PolicyFileTest, VersionIsStableAndFollowsContent) {
  const std::string text = "defaults: {inboundMode: STRICT}\n";
  EXPECT_EQ(ParseOrDie(text).version(), ParseOrDie(text).version());
  EXPECT_EQ(ParseOrDie(text).version(), StableVersion(text));
  EXPECT_NE(ParseOrDie(text).version(),
            ParseOrDie("defaults: {inboundMode: PERMISSIVE}\n").version());
  EXPECT_EQ(StableVersion(""), "cbf29ce484222325");  // FNV-1a 64 of nothing
}

struct Refusal {
  const char* text;
  const char* error;  // exact message
};

TEST(PolicyFileTest, RefusalsNameTheLineAndTheField) {
  const Refusal kRefusals[] = {
      {"",
       "mesh-policy.yaml:1: (document): the file is empty (expected defaults, "
       "workloads, revocation)"},
      {"defaults: [", "mesh-policy.yaml:1: (document): end of sequence flow not found"},
      {"- a\n",
       "mesh-policy.yaml:1: : expected a mapping with keys defaults, workloads, "
       "revocation"},
      {"defaults: {}\nextra: 1\n",
       "mesh-policy.yaml:2: extra: unknown key (allowed: defaults, workloads, "
       "revocation)"},
      {"defaults: {}\ndefaults: {}\n", "mesh-policy.yaml:2: defaults: duplicate key"},
      {"defaults:\n  inboundMode: strict\n",
       "mesh-policy.yaml:2: defaults.inboundMode: \"strict\" is not STRICT or "
       "PERMISSIVE"},
      {"defaults:\n  meshCidrs: [10.0.0.1/8]\n",
       "mesh-policy.yaml:2: defaults.meshCidrs[0]: \"10.0.0.1/8\" has host bits set "
       "beyond the prefix length"},
      {"defaults:\n  meshCidrs: [10.0.0.0]\n",
       "mesh-policy.yaml:2: defaults.meshCidrs[0]: \"10.0.0.0\" is not a CIDR "
       "(address/prefix, e.g. 10.0.0.0/8)"},
      {"defaults:\n  meshCidrs: 10.0.0.0/8\n",
       "mesh-policy.yaml:2: defaults.meshCidrs: expected a list"},
      {"defaults:\n  outboundExcludedPorts: [22, 70000]\n",
       "mesh-policy.yaml:2: defaults.outboundExcludedPorts[1]: \"70000\" is not an "
       "integer in 1..65535"},
      {"defaults:\n  inboundPorts:\n    - mode: STRICT\n",
       "mesh-policy.yaml:3: defaults.inboundPorts[0]: port is required"},
      {"defaults:\n  inboundPorts:\n    - {port: 80}\n    - {port: 80}\n",
       "mesh-policy.yaml:4: defaults.inboundPorts[1].port: port 80 is listed twice"},
      {"defaults:\n  inboundPorts:\n    - port: 80\n      allowed: []\n",
       "mesh-policy.yaml:4: defaults.inboundPorts[0].allowed: unknown key (allowed: "
       "port, mode, allow)"},
      {"workloads:\n  - namespace: a\n  - namespace: b\n    inboundPorts:\n"
       "      - port: 1\n        allow:\n          - spiffe://td/ns/a/sa/b\n"
       "          - spiffe://td/*\n          - spiffe:/x\n",
       "mesh-policy.yaml:9: workloads[1].inboundPorts[0].allow[2]: \"spiffe:/x\" is not "
       "a SPIFFE ID (invalid SPIFFE ID \"spiffe:/x\": scheme must be \"spiffe://\" "
       "(lower "
       "case))"},
      {"workloads:\n  - namespace: a\n    inboundPorts: [{port: 1, allow: "
       "[\"spiffe://td/ns/*\"]}]\n",
       "mesh-policy.yaml:3: workloads[0].inboundPorts[0].allow[0]: \"spiffe://td/ns/*\" "
       "is not a SPIFFE ID or a wildcard (spiffe://TD/* or spiffe://TD/ns/NS/*)"},
      {"workloads:\n  - serviceAccount: a\n",
       "mesh-policy.yaml:2: workloads[0]: namespace is required (it selects the "
       "workloads)"},
      {"workloads:\n  - namespace: Shop\n",
       "mesh-policy.yaml:2: workloads[0].namespace: \"Shop\" may hold only [a-z0-9-]"},
      {"workloads:\n  - namespace: a\n  - namespace: a\n",
       "mesh-policy.yaml:3: workloads[1]: selects the same workloads as workloads[0]"},
      {"workloads:\n  - namespace: a\n    expectedIdentities:\n"
       "      - {destination: \"10.0.0.1\", spiffeId: spiffe://td/x}\n",
       "mesh-policy.yaml:4: workloads[0].expectedIdentities[0].destination: \"10.0.0.1\" "
       "is not ip:port (e.g. 10.0.0.5:8080 or [fd00::5]:8080)"},
      {"workloads:\n  - namespace: a\n    expectedIdentities:\n"
       "      - {destination: \"10.0.0.1:80\", spiffeId: spiffe://td/*}\n",
       "mesh-policy.yaml:4: workloads[0].expectedIdentities[0].spiffeId: "
       "\"spiffe://td/*\" "
       "is not a SPIFFE ID (wildcards are not allowed here)"},
      {"revocation:\n  closeOpenConnections: yes\n",
       "mesh-policy.yaml:2: revocation.closeOpenConnections: \"yes\" is not true or "
       "false"},
  };
  for (const Refusal& refusal : kRefusals) {
    absl::StatusOr<PolicyFile> policy =
        PolicyFile::Parse(refusal.text, "mesh-policy.yaml");
    ASSERT_FALSE(policy.ok()) << refusal.text;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(policy.status().message()), refusal.error) << refusal.text;
  }
}

}  // namespace
}  // namespace tandem::controlplane
