#include "common/pki/trust_bundle.h"

#include <algorithm>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/pki_test_util.h"

namespace tandem::pki {
namespace {

using testing::MakeRoot;
using testing::MakeWorkload;

constexpr char kId[] = "spiffe://cluster.local/ns/a/sa/b";

TEST(TrustBundleTest, VerifiesChainAndReturnsIdentity) {
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  VerifyFailure failure = VerifyFailure::kMalformed;
  absl::StatusOr<SpiffeId> id = creds.bundle.Verify(creds.chain, absl::Now(), &failure);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), kId);
  EXPECT_EQ(failure, VerifyFailure::kNone);
}

TEST(TrustBundleTest, ReportsWhenTheVerifiedPathIsValid) {
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId, absl::Hours(2));
  Validity validity;
  ASSERT_TRUE(creds.bundle.Verify(creds.chain, absl::Now(), nullptr, &validity).ok());
  const Certificate& leaf = creds.chain.front();
  EXPECT_EQ(validity.not_before, std::max(leaf.not_before(), ca.root().not_before()));
  EXPECT_EQ(validity.not_after, std::min(leaf.not_after(), ca.root().not_after()));
  EXPECT_LT(validity.not_before, validity.not_after);
}

TEST(TrustBundleTest, AcceptsAnyOfSeveralRoots) {
  CertificateAuthority old_root = MakeRoot("old");
  CertificateAuthority new_root = MakeRoot("new");
  absl::StatusOr<TrustBundle> bundle =
      TrustBundle::FromPem(old_root.root().ToPem() + new_root.root().ToPem());
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(bundle->roots().size(), 2u);
  EXPECT_TRUE(bundle->Verify(MakeWorkload(old_root, kId).chain, absl::Now()).ok());
  EXPECT_TRUE(bundle->Verify(MakeWorkload(new_root, kId).chain, absl::Now()).ok());
}

TEST(TrustBundleTest, RefusesUnknownCa) {
  CertificateAuthority ours = MakeRoot("ours");
  CertificateAuthority theirs = MakeRoot("theirs");
  TrustBundle bundle = *TrustBundle::FromCertificates({ours.root()});
  VerifyFailure failure;
  absl::StatusOr<SpiffeId> id =
      bundle.Verify(MakeWorkload(theirs, kId).chain, absl::Now(), &failure);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(failure, VerifyFailure::kUnknownCa);
}

TEST(TrustBundleTest, RefusesExpiredLeaf) {
  absl::Time then = absl::Now() - absl::Hours(5);
  CertificateAuthority ca = MakeRoot("root", then);
  WorkloadCredentials creds = MakeWorkload(ca, kId, absl::Hours(1), then);
  VerifyFailure failure;
  absl::StatusOr<SpiffeId> id = creds.bundle.Verify(creds.chain, absl::Now(), &failure);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(failure, VerifyFailure::kExpired);
  EXPECT_STREQ(VerifyFailureName(failure).data(), "expired");
}

TEST(TrustBundleTest, RefusesNotYetValidLeaf) {
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  VerifyFailure failure;
  absl::StatusOr<SpiffeId> id =
      creds.bundle.Verify(creds.chain, absl::Now() - absl::Hours(1), &failure);
  EXPECT_FALSE(id.ok());
  EXPECT_EQ(failure, VerifyFailure::kNotYetValid);
}

TEST(TrustBundleTest, RefusesEmptyChain) {
  CertificateAuthority ca = MakeRoot();
  TrustBundle bundle = *TrustBundle::FromCertificates({ca.root()});
  VerifyFailure failure;
  EXPECT_FALSE(bundle.Verify({}, absl::Now(), &failure).ok());
  EXPECT_EQ(failure, VerifyFailure::kMalformed);
}

TEST(TrustBundleTest, RefusesCaCertificateAsLeaf) {
  CertificateAuthority root = MakeRoot();
  CertificateAuthority inter = *root.CreateIntermediate({}, absl::Now());
  TrustBundle bundle = *TrustBundle::FromCertificates({root.root()});
  VerifyFailure failure;
  absl::StatusOr<SpiffeId> id = bundle.Verify(inter.chain(), absl::Now(), &failure);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(failure, VerifyFailure::kNotAllowed);
}

TEST(TrustBundleTest, RefusesBundleWithoutCertificatesOrWithLeaf) {
  EXPECT_EQ(TrustBundle::FromPem("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TrustBundle::FromCertificates({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  absl::StatusOr<TrustBundle> bundle = TrustBundle::FromPem(creds.leaf().ToPem());
  ASSERT_FALSE(bundle.ok());
  EXPECT_NE(bundle.status().message().find("not a CA"), std::string::npos);
}

TEST(WorkloadCredentialsTest, ValidatesMatchingSet) {
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  absl::StatusOr<SpiffeId> id = creds.Validate(absl::Now());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->ToString(), kId);
}

TEST(WorkloadCredentialsTest, RefusesKeyThatDoesNotMatchLeaf) {
  CertificateAuthority ca = MakeRoot();
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  creds.key = *PrivateKey::GenerateP256();
  absl::StatusOr<SpiffeId> id = creds.Validate(absl::Now());
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("does not match"), std::string::npos);
}

TEST(WorkloadCredentialsTest, RefusesChainFromAnotherRoot) {
  CertificateAuthority ca = MakeRoot("a");
  CertificateAuthority other = MakeRoot("b");
  WorkloadCredentials creds = MakeWorkload(ca, kId);
  creds.bundle = *TrustBundle::FromCertificates({other.root()});
  EXPECT_EQ(creds.Validate(absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::pki
