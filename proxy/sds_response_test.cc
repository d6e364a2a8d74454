#include "proxy/sds_response.h"

#include "absl/status/status.h"
#include "envoy/secret.pb.h"
#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

namespace discovery = ::envoy::service::discovery::v3;
namespace tls = ::envoy::extensions::transport_sockets::tls::v3;

discovery::DiscoveryResponse Response(const std::vector<tls::Secret>& secrets) {
  discovery::DiscoveryResponse response;
  response.set_type_url(kSdsSecretTypeUrl);
  for (const tls::Secret& secret : secrets) response.add_resources()->PackFrom(secret);
  return response;
}

tls::Secret Default(const std::string& chain, const std::string& key) {
  tls::Secret secret;
  secret.set_name("default");
  secret.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_bytes(chain);
  secret.mutable_tls_certificate()->mutable_private_key()->set_inline_string(key);
  return secret;
}

tls::Secret RootCa(const std::string& bundle) {
  tls::Secret secret;
  secret.set_name("ROOTCA");
  secret.mutable_validation_context()->mutable_trusted_ca()->set_inline_bytes(bundle);
  return secret;
}

TEST(SdsResponseTest, MergesHalvesDeliveredInSeparateResponses) {
  absl::StatusOr<WorkloadSecretPem> first =
      ApplySdsResponse(Response({Default("chain", "key")}), {});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(SdsSecretComplete(*first));
  absl::StatusOr<WorkloadSecretPem> second =
      ApplySdsResponse(Response({RootCa("bundle")}), *first);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(SdsSecretComplete(*second));
  EXPECT_EQ(second->cert_chain, "chain");
  EXPECT_EQ(second->private_key, "key");
  EXPECT_EQ(second->trust_bundle, "bundle");
}

TEST(SdsResponseTest, RefusesAnotherTypeUrlNamingIt) {
  discovery::DiscoveryResponse response = Response({Default("chain", "key")});
  response.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  absl::StatusOr<WorkloadSecretPem> merged = ApplySdsResponse(response, {});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("envoy.config.cluster.v3.Cluster"),
            absl::string_view::npos)
      << merged.status();
}

TEST(SdsResponseTest, RefusesAResourceThatIsNotASecretAndKeepsWhatWasHeld) {
  discovery::DiscoveryResponse response = Response({Default("new chain", "new key")});
  google::protobuf::Any* bogus = response.add_resources();
  bogus->set_type_url(kSdsSecretTypeUrl);
  bogus->set_value("\xff\xff");
  WorkloadSecretPem held{"old key", "old chain", "old bundle"};
  absl::StatusOr<WorkloadSecretPem> merged = ApplySdsResponse(response, held);
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(merged.status().message(), "resource is not an envoy Secret");
  EXPECT_EQ(held.cert_chain, "old chain");
}

}  // namespace
}  // namespace tandem::proxy
