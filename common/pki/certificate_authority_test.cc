#include "common/pki/certificate_authority.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/temp_dir.h"
#include "tests/support/pki_test_util.h"

namespace tandem::pki {
namespace {

using testing::MakeRoot;

TEST(CertificateAuthorityTest, RootIsSelfSignedCa) {
  CertificateAuthority ca = MakeRoot();
  EXPECT_TRUE(ca.certificate().IsCa());
  EXPECT_EQ(ca.certificate().Subject(), ca.certificate().Issuer());
  EXPECT_TRUE(ca.IntermediatesForLeaf().empty());
  EXPECT_TRUE(ca.certificate().MatchesKey(ca.key()));
}

TEST(CertificateAuthorityTest, IssuesWorkloadWithRequiredExtensions) {
  CertificateAuthority ca = MakeRoot();
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/ns/a/sa/b");
  absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  absl::StatusOr<Certificate> leaf =
      ca.IssueWorkload(*CertificateRequest::Create(key, id), id, absl::Hours(2), now);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_EQ(*leaf->GetSpiffeId(), id);
  EXPECT_TRUE(leaf->MatchesKey(key));
  EXPECT_FALSE(leaf->IsCa());
  EXPECT_EQ(leaf->not_after(), now + absl::Hours(2));
  EXPECT_EQ(leaf->not_before(), now - absl::Minutes(1));
  EXPECT_FALSE(leaf->SerialHex().empty());

  X509* x = leaf->get();
  EXPECT_TRUE(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
  uint32_t eku = X509_get_extended_key_usage(x);
  EXPECT_TRUE(eku & XKU_SSL_SERVER);
  EXPECT_TRUE(eku & XKU_SSL_CLIENT);
  uint32_t ku = X509_get_key_usage(x);
  EXPECT_TRUE(ku & KU_DIGITAL_SIGNATURE);
  EXPECT_FALSE(ku & KU_KEY_CERT_SIGN);
  EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(x), nullptr);
  int crit = 0;
  bssl::UniquePtr<BASIC_CONSTRAINTS> constraints(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x, NID_basic_constraints, &crit, nullptr)));
  ASSERT_TRUE(constraints);
  EXPECT_FALSE(constraints->ca);
  EXPECT_EQ(crit, 1);
}

TEST(CertificateAuthorityTest, WritesAuthenticatedIdentityNotRequestedOne) {
  CertificateAuthority ca = MakeRoot();
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId asked = *SpiffeId::Parse("spiffe://cluster.local/ns/admin/sa/root");
  SpiffeId real = *SpiffeId::Parse("spiffe://cluster.local/ns/a/sa/b");
  absl::StatusOr<Certificate> leaf = ca.IssueWorkload(
      *CertificateRequest::Create(key, asked), real, absl::Hours(1), absl::Now());
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(*leaf->GetSpiffeId(), real);
}

TEST(CertificateAuthorityTest, ClampsLeafToCaLifetime) {
  CertificateAuthority::RootOptions options;
  options.lifetime = absl::Hours(1);
  absl::Time now = absl::Now();
  CertificateAuthority ca = *CertificateAuthority::CreateRoot(options, now);
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/x");
  Certificate leaf =
      *ca.IssueWorkload(*CertificateRequest::Create(key, id), id, absl::Hours(24), now);
  EXPECT_LE(leaf.not_after(), ca.certificate().not_after());
}

TEST(CertificateAuthorityTest, RefusesNonPositiveTtl) {
  CertificateAuthority ca = MakeRoot();
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/x");
  absl::StatusOr<Certificate> leaf = ca.IssueWorkload(
      *CertificateRequest::Create(key, id), id, absl::ZeroDuration(), absl::Now());
  EXPECT_EQ(leaf.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CertificateAuthorityTest, RefusesToIssueFromExpiredCa) {
  CertificateAuthority::RootOptions options;
  options.lifetime = absl::Hours(1);
  CertificateAuthority ca =
      *CertificateAuthority::CreateRoot(options, absl::Now() - absl::Hours(3));
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/x");
  absl::StatusOr<Certificate> leaf = ca.IssueWorkload(
      *CertificateRequest::Create(key, id), id, absl::Hours(1), absl::Now());
  EXPECT_EQ(leaf.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CertificateAuthorityTest, IntermediateChainsToRoot) {
  CertificateAuthority root = MakeRoot();
  absl::StatusOr<CertificateAuthority> inter =
      root.CreateIntermediate({.common_name = "intermediate"}, absl::Now());
  ASSERT_TRUE(inter.ok()) << inter.status();
  ASSERT_EQ(inter->chain().size(), 2u);
  EXPECT_EQ(inter->IntermediatesForLeaf().size(), 1u);
  WorkloadCredentials creds =
      testing::MakeWorkload(*inter, "spiffe://cluster.local/ns/a/sa/b");
  EXPECT_EQ(creds.chain.size(), 2u);
  TrustBundle bundle = *TrustBundle::FromCertificates({root.root()});
  EXPECT_TRUE(bundle.Verify(creds.chain, absl::Now()).ok());
}

TEST(CertificateAuthorityTest, LoadsFromPemAndRoundTrips) {
  CertificateAuthority root = MakeRoot();
  CertificateAuthority inter = *root.CreateIntermediate({}, absl::Now());
  absl::StatusOr<CertificateAuthority> loaded = CertificateAuthority::FromPem(
      *inter.key().ToPem(), Certificate::ChainToPem(inter.chain()));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->root().ToDer(), root.root().ToDer());
}

TEST(CertificateAuthorityTest, RefusesKeyThatDoesNotMatch) {
  CertificateAuthority a = MakeRoot("a");
  CertificateAuthority b = MakeRoot("b");
  absl::StatusOr<CertificateAuthority> loaded =
      CertificateAuthority::FromPem(*a.key().ToPem(), b.certificate().ToPem());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("does not match"), std::string::npos);
}

TEST(CertificateAuthorityTest, RefusesNonCaCertificate) {
  CertificateAuthority root = MakeRoot();
  WorkloadCredentials creds = testing::MakeWorkload(root, "spiffe://cluster.local/x");
  absl::StatusOr<CertificateAuthority> loaded =
      CertificateAuthority::FromPem(*creds.key.ToPem(), creds.leaf().ToPem());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("not a CA"), std::string::npos);
}

TEST(CertificateAuthorityTest, RefusesBrokenChain) {
  CertificateAuthority root = MakeRoot("root");
  CertificateAuthority other = MakeRoot("other");
  CertificateAuthority inter = *root.CreateIntermediate({}, absl::Now());
  absl::StatusOr<CertificateAuthority> loaded = CertificateAuthority::FromPem(
      *inter.key().ToPem(), inter.certificate().ToPem() + other.root().ToPem());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("not issued by"), std::string::npos);
}

}  // namespace
}  // namespace tandem::pki

namespace tandem::pki {
namespace {

TEST(CertificateAuthorityTest, IssuesServerCertificateWithDnsAndIpNames) {
  CertificateAuthority ca = testing::MakeRoot();
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId id = *SpiffeId::Parse("spiffe://cluster.local/ns/tandem-system/sa/tandem-ca");
  absl::StatusOr<Certificate> cert = ca.IssueServer(
      key, id, {"tandem-ca", "localhost"}, {"127.0.0.1"}, absl::Hours(1), absl::Now());
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(X509_check_host(cert->get(), "tandem-ca", 9, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert->get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(*cert->GetSpiffeId(), id);
  EXPECT_EQ(
      ca.IssueServer(key, id, {"a,b"}, {}, absl::Hours(1), absl::Now()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::pki

namespace tandem::pki {
namespace {

using ::tandem::testing::OpensslCli;
using ::tandem::testing::TempDir;

constexpr char kUri[] = "spiffe://cluster.local/ns/shop/sa/cart";

// CAs whose keys and certificates the openssl command-line tool made, as an
// enterprise's or an operator's CA is made; what tandem issues from them is checked by
// `openssl verify` as well as by tandem.
class OpensslCaTest : public ::testing::Test {
 protected:
  // Makes an openssl root named `name` over a fresh `algorithm` key; returns key and
  // certificate PEMs.
  std::pair<std::string, std::string> Root(const std::string& name,
                                           const std::string& algorithm) {
    absl::StatusOr<std::string> key = openssl_.GenerateKey(name, algorithm);
    EXPECT_TRUE(key.ok()) << key.status();
    absl::StatusOr<std::string> cert = openssl_.MakeRoot(name);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return {key.value_or(""), cert.value_or("")};
  }
  // Issues a leaf for kUri from `ca` over an openssl-made `algorithm` CSR, and writes
  // it to leaf.pem.
  absl::StatusOr<Certificate> IssueOver(const CertificateAuthority& ca,
                                        const std::string& algorithm) {
    absl::StatusOr<std::string> key = openssl_.GenerateKey("leaf", algorithm);
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> csr = openssl_.MakeCsr("leaf", kUri);
    if (!csr.ok()) return csr.status();
    absl::StatusOr<CertificateRequest> parsed = CertificateRequest::FromPem(*csr);
    if (!parsed.ok()) return parsed.status();
    absl::StatusOr<Certificate> leaf =
        ca.IssueWorkload(*parsed, *SpiffeId::Parse(kUri), absl::Hours(1), absl::Now());
    if (leaf.ok()) std::ofstream(openssl_.PathOf("leaf.pem")) << leaf->ToPem();
    return leaf;
  }
  // Returns openssl's verdict on leaf.pem against `root` with `untrusted` between.
  std::string OpensslVerify(const std::string& root, const std::string& untrusted = "") {
    absl::StatusOr<std::string> out =
        openssl_.Run("verify -purpose sslclient -CAfile " + root +
                     (untrusted.empty() ? "" : " -untrusted " + untrusted) + " leaf.pem");
    return out.ok() ? *out : std::string(out.status().message());
  }

  TempDir dir_{"tandem-openssl-ca"};
  OpensslCli openssl_{dir_.path()};
};

TEST_F(OpensslCaTest, IssuesFromAnRsaRootWithSha256WithRsaThatOpensslVerifies) {
  auto [key, cert] = Root("root", "RSA:3072");
  absl::StatusOr<CertificateAuthority> ca = CertificateAuthority::FromPem(key, cert);
  ASSERT_TRUE(ca.ok()) << ca.status();
  for (const char* algorithm : {"EC:P-256", "RSA:2048"}) {
    absl::StatusOr<Certificate> leaf = IssueOver(*ca, algorithm);
    ASSERT_TRUE(leaf.ok()) << algorithm << ": " << leaf.status();
    EXPECT_EQ(X509_get_signature_nid(leaf->get()), NID_sha256WithRSAEncryption);
    EXPECT_EQ(OpensslVerify("root.crt"), "leaf.pem: OK\n") << algorithm;
    TrustBundle bundle = *TrustBundle::FromCertificates({ca->root()});
    absl::StatusOr<SpiffeId> id = bundle.Verify({*leaf}, absl::Now());
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->ToString(), kUri);
  }
}

TEST_F(OpensslCaTest, IssuesFromAnRsaIntermediateUnderAnRsaRoot) {
  Root("root", "RSA:3072");
  absl::StatusOr<std::string> key = openssl_.GenerateKey("inter", "RSA:2048");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> inter = openssl_.MakeIntermediate("inter", "root");
  ASSERT_TRUE(inter.ok()) << inter.status();
  absl::StatusOr<std::string> root = openssl_.Run("x509 -in root.crt");
  ASSERT_TRUE(root.ok());
  absl::StatusOr<CertificateAuthority> ca =
      CertificateAuthority::FromPem(*key, *inter + *root);
  ASSERT_TRUE(ca.ok()) << ca.status();
  ASSERT_EQ(ca->IntermediatesForLeaf().size(), 1u);
  absl::StatusOr<Certificate> leaf = IssueOver(*ca, "RSA:2048");
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_EQ(OpensslVerify("root.crt", "inter.crt"), "leaf.pem: OK\n");
  TrustBundle bundle = *TrustBundle::FromCertificates({ca->root()});
  EXPECT_TRUE(bundle.Verify({*leaf, ca->IntermediatesForLeaf()[0]}, absl::Now()).ok());
}

TEST_F(OpensslCaTest, SignsWithSha384UnderAP384Root) {
  auto [key, cert] = Root("root", "EC:P-384");
  absl::StatusOr<CertificateAuthority> ca = CertificateAuthority::FromPem(key, cert);
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<Certificate> leaf = IssueOver(*ca, "EC:P-256");
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_EQ(X509_get_signature_nid(leaf->get()), NID_ecdsa_with_SHA384);
  EXPECT_EQ(OpensslVerify("root.crt"), "leaf.pem: OK\n");
}

TEST_F(OpensslCaTest, RefusesAWeakRsaCaKey) {
  auto [key, cert] = Root("root", "RSA:1024");
  absl::StatusOr<CertificateAuthority> ca = CertificateAuthority::FromPem(key, cert);
  ASSERT_FALSE(ca.ok());
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ca.status().message(),
            "private key: RSA-1024 is too weak: RSA keys need at least 2048 bits");
}

TEST_F(OpensslCaTest, RefusesAChainUpToAWeakRoot) {
  Root("root", "RSA:1024");
  absl::StatusOr<std::string> key = openssl_.GenerateKey("inter", "RSA:2048");
  absl::StatusOr<std::string> inter = openssl_.MakeIntermediate("inter", "root");
  absl::StatusOr<std::string> root = openssl_.Run("x509 -in root.crt");
  ASSERT_TRUE(key.ok() && inter.ok() && root.ok());
  absl::StatusOr<CertificateAuthority> ca =
      CertificateAuthority::FromPem(*key, *inter + *root);
  ASSERT_FALSE(ca.ok());
  EXPECT_EQ(ca.status().message(),
            "CA: certificate 1 of the chain: RSA-1024 is too weak: RSA keys need at "
            "least 2048 bits");
}

}  // namespace
}  // namespace tandem::pki
