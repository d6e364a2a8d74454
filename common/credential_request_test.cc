#include "common/credential_request.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/pki_test_util.h"

namespace tandem {
namespace {

constexpr char kId[] = "spiffe://cluster.local/ns/a/sa/b";

std::vector<std::string> Issue(const pki::CertificateAuthority& ca,
                               const std::string& csr_pem, const std::string& id) {
  pki::CertificateRequest csr = *pki::CertificateRequest::FromPem(csr_pem);
  SpiffeId spiffe = *SpiffeId::Parse(id);
  pki::Certificate leaf = *ca.IssueWorkload(csr, spiffe, absl::Hours(1), absl::Now());
  std::vector<std::string> out = {leaf.ToPem()};
  for (const auto& c : ca.IntermediatesForLeaf()) out.push_back(c.ToPem());
  out.push_back(ca.root().ToPem());
  return out;
}

TEST(CredentialRequestTest, AcceptsMatchingResponseInIstioOrder) {
  pki::CertificateAuthority root = pki::testing::MakeRoot();
  pki::CertificateAuthority inter = *root.CreateIntermediate({}, absl::Now());
  PendingCredential pending = *NewCredentialRequest(kId);
  absl::StatusOr<IssuedCredential> issued = AcceptCredential(
      pending.private_key_pem, Issue(inter, pending.csr_pem, kId), "", kId, absl::Now());
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->spiffe_id, kId);
  EXPECT_GT(issued->not_after, absl::Now());
  // Chain: leaf + intermediate; bundle: the root.
  EXPECT_EQ(pki::Certificate::ChainFromPem(issued->secret.cert_chain)->size(), 2u);
  EXPECT_EQ(pki::Certificate::ChainFromPem(issued->secret.trust_bundle)->size(), 1u);
}

TEST(CredentialRequestTest, MergesExtraRootsIntoTheBundle) {
  pki::CertificateAuthority root = pki::testing::MakeRoot("a");
  pki::CertificateAuthority next = pki::testing::MakeRoot("b");
  PendingCredential pending = *NewCredentialRequest(kId);
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(pending.private_key_pem, Issue(root, pending.csr_pem, kId),
                       next.root().ToPem(), "", absl::Now());
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(pki::Certificate::ChainFromPem(issued->secret.trust_bundle)->size(), 2u);
}

TEST(CredentialRequestTest, RefusesARootTheCaResponseBringsAlong) {
  pki::CertificateAuthority pinned = pki::testing::MakeRoot("pinned");
  pki::CertificateAuthority rogue = pki::testing::MakeRoot("rogue");
  PendingCredential pending = *NewCredentialRequest(kId);
  std::vector<std::string> chain = Issue(rogue, pending.csr_pem, kId);
  EXPECT_TRUE(AcceptCredential(pending.private_key_pem, chain, "", kId, absl::Now()).ok())
      << "without pinning the response's own root is taken";
  absl::StatusOr<IssuedCredential> issued = AcceptCredential(
      pending.private_key_pem, chain, "", kId, absl::Now(), pinned.root().ToPem());
  ASSERT_FALSE(issued.ok());
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(issued.status().message()).find("pinned"), std::string::npos);
  EXPECT_TRUE(AcceptCredential(pending.private_key_pem,
                               Issue(pinned, pending.csr_pem, kId), "", kId, absl::Now(),
                               pinned.root().ToPem())
                  .ok());
}

TEST(CredentialRequestTest, RefusesChainForAnotherKey) {
  pki::CertificateAuthority root = pki::testing::MakeRoot();
  PendingCredential mine = *NewCredentialRequest(kId);
  PendingCredential theirs = *NewCredentialRequest(kId);
  absl::StatusOr<IssuedCredential> issued = AcceptCredential(
      mine.private_key_pem, Issue(root, theirs.csr_pem, kId), "", kId, absl::Now());
  ASSERT_FALSE(issued.ok());
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CredentialRequestTest, RefusesGarbageEmptyAndWrongIdentity) {
  pki::CertificateAuthority root = pki::testing::MakeRoot();
  PendingCredential pending = *NewCredentialRequest(kId);
  EXPECT_FALSE(AcceptCredential(pending.private_key_pem, {}, "", "", absl::Now()).ok());
  EXPECT_FALSE(
      AcceptCredential(pending.private_key_pem, {"garbage"}, "", "", absl::Now()).ok());
  absl::StatusOr<IssuedCredential> other =
      AcceptCredential(pending.private_key_pem,
                       Issue(root, pending.csr_pem, "spiffe://cluster.local/ns/x/sa/y"),
                       "", kId, absl::Now());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(std::string(other.status().message()).find("expected"), std::string::npos);
  EXPECT_FALSE(NewCredentialRequest("not an id").ok());
}

}  // namespace
}  // namespace tandem
