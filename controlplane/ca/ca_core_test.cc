#include "controlplane/ca/ca_core.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "common/file_util.h"
#include "common/pki/certificate.h"
#include "common/pki/certificate_authority.h"
#include "controlplane/auth/refusal_reason.h"
#include "gtest/gtest.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/temp_dir.h"
#include "tests/support/test_csr.h"

namespace tandem::controlplane {
namespace {

class CaCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-ca-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    options_.root_dir = dir_ + "/root";
    options_.max_ttl = absl::Hours(2);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes `data` to `path` with `mode`.
  static void Write(const std::string& path, const std::string& data, mode_t mode) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    std::fputs(data.c_str(), f);
    std::fclose(f);
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  std::string dir_;
  CaCoreOptions options_;
};

TEST_F(CaCoreTest, GeneratesOwnerOnlyRootOnFirstStartAndReusesIt) {
  absl::StatusOr<std::unique_ptr<CaCore>> first = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(stat((options_.root_dir + "/ca-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat(options_.root_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  absl::StatusOr<std::unique_ptr<CaCore>> second = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*first)->trust_bundle_pem(), (*second)->trust_bundle_pem());
}

TEST_F(CaCoreTest, RefusesGroupReadableKey) {
  ASSERT_TRUE(CaCore::Create(options_, absl::Now()).ok());
  chmod((options_.root_dir + "/ca-key.pem").c_str(), 0640);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_FALSE(core.ok());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(core.status().message()).find("owner-only"), std::string::npos);
}

TEST_F(CaCoreTest, RefusesCorruptKeyFile) {
  ASSERT_TRUE(CaCore::Create(options_, absl::Now()).ok());
  std::string key = options_.root_dir + "/ca-key.pem";
  ASSERT_EQ(truncate(key.c_str(), 10), 0);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(core.status().message()).find("CA files"), std::string::npos);
}

TEST_F(CaCoreTest, IssuesAuthenticatedIdentityWithClampedTtl) {
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  // The CSR asks for an admin identity; the CA writes the caller's.
  PendingCredential pending =
      *NewCredentialRequest("spiffe://cluster.local/ns/kube-system/sa/admin");
  absl::StatusOr<std::vector<std::string>> chain =
      core->Issue(pending.csr_pem, {"shop", "cart"}, 48 * 3600, absl::Now());
  ASSERT_TRUE(chain.ok()) << chain.status();
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(pending.private_key_pem, *chain, "", "", absl::Now());
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->spiffe_id, "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_LE(issued->not_after - absl::Now(), absl::Hours(2));
  EXPECT_GT(issued->not_after - absl::Now(), absl::Hours(2) - absl::Minutes(1));
}

TEST_F(CaCoreTest, RefusesGarbageCsr) {
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core->Issue("garbage", {"a", "b"}, 0, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CaCoreTest, RefusesRootDirectoryOpenToOthers) {
  ASSERT_TRUE(CaCore::Create(options_, absl::Now()).ok());
  chmod(options_.root_dir.c_str(), 0755);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(core.status().message()).find("chmod 700"), std::string::npos)
      << core.status();
}

TEST_F(CaCoreTest, RefusesWorldReadableCertificateFile) {
  ASSERT_TRUE(CaCore::Create(options_, absl::Now()).ok());
  chmod((options_.root_dir + "/ca-cert.pem").c_str(), 0644);
  EXPECT_EQ(CaCore::Create(options_, absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CaCoreTest, AcceptsGroupReadableSecretVolumeButNeverGeneratesThere) {
  options_.key_permissions = KeyPermissions::kSecretVolume;
  absl::StatusOr<std::unique_ptr<CaCore>> missing = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  options_.key_permissions = KeyPermissions::kOwnerOnly;
  ASSERT_TRUE(CaCore::Create(options_, absl::Now()).ok());
  // What the kubelet makes of a Secret with defaultMode 0400 and an fsGroup.
  chmod(options_.root_dir.c_str(), 01777);
  chmod((options_.root_dir + "/ca-key.pem").c_str(), 0440);
  chmod((options_.root_dir + "/ca-cert.pem").c_str(), 0440);
  options_.key_permissions = KeyPermissions::kSecretVolume;
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_TRUE(core.ok()) << core.status();
  chmod((options_.root_dir + "/ca-key.pem").c_str(), 0444);
  EXPECT_EQ(CaCore::Create(options_, absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CaCoreTest, RefusesWeakRsaKeyCsrAsBadCsr) {
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  std::string csr = MakeRsaCsrPem("spiffe://cluster.local/ns/a/sa/b", 1024);
  ASSERT_FALSE(csr.empty());
  absl::StatusOr<std::vector<std::string>> chain =
      core->Issue(csr, {"a", "b"}, 0, absl::Now());
  ASSERT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(chain.status().message(),
            "CSR refused: RSA-1024 is too weak: RSA keys need at least 2048 bits");
  EXPECT_EQ(RefusalReasonOf(chain.status(), "none"), "bad_csr");
}

// An operator's RSA root, made by the openssl command-line tool, in the root dir.
class CaCoreOpensslRootTest : public CaCoreTest {
 protected:
  // Makes an openssl root over an `algorithm` key and installs it as the CA's root
  // (dir 0700, files 0600).
  void InstallOpensslRoot(const std::string& algorithm) {
    absl::StatusOr<std::string> key = openssl_.GenerateKey("root", algorithm);
    ASSERT_TRUE(key.ok()) << key.status();
    absl::StatusOr<std::string> cert = openssl_.MakeRoot("root");
    ASSERT_TRUE(cert.ok()) << cert.status();
    ASSERT_EQ(mkdir(options_.root_dir.c_str(), 0700), 0);
    Write(options_.root_dir + "/ca-key.pem", *key, 0600);
    Write(options_.root_dir + "/ca-cert.pem", *cert, 0600);
  }
  testing::TempDir openssl_dir_{"tandem-ca-openssl"};
  testing::OpensslCli openssl_{openssl_dir_.path()};
};

TEST_F(CaCoreOpensslRootTest, IssuesForAnRsaCsrFromAnRsaRootAndRenewsOverItsChain) {
  InstallOpensslRoot("RSA:3072");
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(core.ok()) << core.status();
  // Istio's agent sends RSA-2048 CSRs unless told otherwise.
  ASSERT_TRUE(openssl_.GenerateKey("istio-agent", "RSA:2048").ok());
  absl::StatusOr<std::string> csr =
      openssl_.MakeCsr("istio-agent", "spiffe://cluster.local/ns/a/sa/b");
  ASSERT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<std::vector<std::string>> chain =
      (*core)->Issue(*csr, {"a", "b"}, 0, absl::Now());
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 2u);  // leaf, then the RSA root
  absl::StatusOr<ServiceAccount> peer =
      (*core)->AuthenticatePeer((*chain)[0] + (*chain)[1], absl::Now());
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->ns, "a");
  EXPECT_EQ(peer->name, "b");
}

TEST_F(CaCoreOpensslRootTest, RefusesAWeakRsaRootKeyNamingTheReason) {
  InstallOpensslRoot("RSA:1024");
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_FALSE(core.ok());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core.status().message(),
            "CA files in " + options_.root_dir +
                ": private key: RSA-1024 is too weak: RSA keys need at least 2048 bits");
}

// Istio's plug-in CA files (the `cacerts` Secret), made as Istio's
// tools/certs/Makefile.selfsigned.mk makes them with the openssl CLI (P-256 keys here,
// for speed; RSA roots are tested above): a root, an intermediate for the cluster,
// ca-cert.pem the intermediate alone, cert-chain.pem the intermediate then the root,
// root-cert.pem the root.
class CaCoreIstioLayoutTest : public CaCoreOpensslRootTest {
 protected:
  void SetUp() override {
    CaCoreOpensslRootTest::SetUp();
    for (const char* name : {"root", "other-root"}) {
      ASSERT_TRUE(openssl_.GenerateKey(name, "EC:P-256").ok());
    }
    root_ = *openssl_.MakeRoot("root");
    other_root_ = *openssl_.MakeRoot("other-root");
    ASSERT_TRUE(openssl_.GenerateKey("cluster1", "EC:P-256").ok());
    absl::StatusOr<std::string> intermediate =
        openssl_.MakeIntermediate("cluster1", "root");
    ASSERT_TRUE(intermediate.ok()) << intermediate.status();
    intermediate_ = *intermediate;
    ASSERT_EQ(mkdir(options_.root_dir.c_str(), 0700), 0);
  }
  // Writes the four files (owner-only); an empty text leaves that file out.
  void InstallCacerts(const std::string& ca_cert, const std::string& cert_chain,
                      const std::string& root_cert) {
    Write(options_.root_dir + "/ca-key.pem",
          *ReadFileToString(openssl_.PathOf("cluster1.key")), 0600);
    Write(options_.root_dir + "/ca-cert.pem", ca_cert, 0600);
    if (!cert_chain.empty())
      Write(options_.root_dir + "/cert-chain.pem", cert_chain, 0600);
    if (!root_cert.empty()) Write(options_.root_dir + "/root-cert.pem", root_cert, 0600);
  }
  std::string root_, other_root_, intermediate_;
};

TEST_F(CaCoreIstioLayoutTest, SignsWithIstiosCacertsFilesAsTheyAre) {
  InstallCacerts(intermediate_, intermediate_ + root_, root_);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ((*core)->trust_bundle_pem(), root_);
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  absl::StatusOr<std::vector<std::string>> chain =
      (*core)->Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 3u);  // leaf, the cluster's intermediate, the root
  EXPECT_EQ((*chain)[1], intermediate_);
  EXPECT_EQ((*chain)[2], root_);
  absl::StatusOr<IssuedCredential> issued =
      AcceptCredential(pending.private_key_pem, *chain, "", "", absl::Now(), root_);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->spiffe_id, "spiffe://cluster.local/ns/a/sa/b");
}

TEST_F(CaCoreIstioLayoutTest, PublishesEveryRootOfRootCertPem) {
  // During an Istio root rotation root-cert.pem holds the old and the new root.
  InstallCacerts(intermediate_, intermediate_ + root_, other_root_ + root_);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ((*core)->trust_bundle_pem(), root_ + other_root_);
}

TEST_F(CaCoreIstioLayoutTest, TakesASelfSignedCaCertWithAnEmptyCertChain) {
  // "If your ca-cert.pem is the same as root-cert.pem, cert-chain.pem should be empty."
  Write(options_.root_dir + "/ca-key.pem", *ReadFileToString(openssl_.PathOf("root.key")),
        0600);
  Write(options_.root_dir + "/ca-cert.pem", root_, 0600);
  Write(options_.root_dir + "/cert-chain.pem", "", 0600);
  Write(options_.root_dir + "/root-cert.pem", root_, 0600);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ((*core)->trust_bundle_pem(), root_);
}

TEST_F(CaCoreIstioLayoutTest, RefusesACertChainThatDoesNotStartWithCaCert) {
  InstallCacerts(intermediate_, root_, root_);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core.status().message(),
            "CA files in " + options_.root_dir +
                ": cert-chain.pem must start with the certificate in ca-cert.pem "
                "(Istio's layout: the signing certificate, then its issuers up to the "
                "root)");
}

TEST_F(CaCoreIstioLayoutTest, RefusesARootCertPemWithoutTheChainsRoot) {
  InstallCacerts(intermediate_, intermediate_ + root_, other_root_);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(core.status().message().find(
                ": root-cert.pem does not hold the root the CA chain ends with (\""),
            std::string::npos)
      << core.status();
}

TEST_F(CaCoreIstioLayoutTest, RefusesAnIntermediateWithoutItsChain) {
  InstallCacerts(intermediate_, "", root_);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().message(), "CA files in " + options_.root_dir +
                                         ": CA: certificate 0 (last) is not self-signed");
}

TEST_F(CaCoreIstioLayoutTest, RefusesARootCertPemOthersCanWrite) {
  InstallCacerts(intermediate_, intermediate_ + root_, root_);
  const std::string path = options_.root_dir + "/root-cert.pem";
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core.status().message(),
            path + " has mode 0666; CA key material must be owner-only (chmod 600 " +
                path + ")");
}

TEST_F(CaCoreTest, UsesDefaultTtlWhenNoneIsRequested) {
  options_.default_ttl = absl::Minutes(30);
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  std::vector<std::string> chain =
      *core->Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  IssuedCredential issued =
      *AcceptCredential(pending.private_key_pem, chain, "", "", absl::Now());
  EXPECT_LE(issued.not_after - absl::Now(), absl::Minutes(30));
  EXPECT_GT(issued.not_after - absl::Now(), absl::Minutes(29));
}

TEST_F(CaCoreTest, SignsWithIntermediateAndPublishesExtraRoots) {
  // An operator-provided intermediate: key + chain (intermediate, then root).
  pki::CertificateAuthority root =
      *pki::CertificateAuthority::CreateRoot({}, absl::Now());
  pki::CertificateAuthority intermediate =
      *root.CreateIntermediate({.common_name = "tandem intermediate"}, absl::Now());
  ASSERT_EQ(mkdir(options_.root_dir.c_str(), 0700), 0);
  Write(options_.root_dir + "/ca-key.pem", *intermediate.key().ToPem(), 0600);
  Write(options_.root_dir + "/ca-cert.pem",
        pki::Certificate::ChainToPem(intermediate.chain()), 0600);
  pki::CertificateAuthority next_root =
      *pki::CertificateAuthority::CreateRoot({.common_name = "next root"}, absl::Now());
  options_.extra_roots_pem = next_root.root().ToPem();
  absl::StatusOr<std::unique_ptr<CaCore>> core = CaCore::Create(options_, absl::Now());
  ASSERT_TRUE(core.ok()) << core.status();

  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  std::vector<std::string> chain =
      *(*core)->Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  // Leaf, intermediate, our root, then the extra root (agents take the last element
  // as a root; the whole bundle is also served at /trust-bundle).
  ASSERT_EQ(chain.size(), 4u);
  EXPECT_EQ(chain[1], intermediate.certificate().ToPem());
  EXPECT_EQ(chain[2], root.root().ToPem());
  EXPECT_EQ(chain[3], next_root.root().ToPem());
  EXPECT_EQ((*core)->trust_bundle_pem(), root.root().ToPem() + next_root.root().ToPem());
  // The leaf verifies through the intermediate, and renews by certificate.
  absl::StatusOr<ServiceAccount> who =
      (*core)->AuthenticatePeer(chain[0] + chain[1], absl::Now());
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->name, "b");
}

TEST_F(CaCoreTest, AuthenticatesRenewalByOwnCertificateOnly) {
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
  std::vector<std::string> chain =
      *core->Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  absl::StatusOr<ServiceAccount> who = core->AuthenticatePeer(chain[0], absl::Now());
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->ns, "a");
  EXPECT_EQ(who->name, "b");
  EXPECT_FALSE(core->AuthenticatePeer(chain[0], absl::Now() + absl::Hours(3)).ok());
  // A certificate from another CA is refused.
  CaCoreOptions other = options_;
  other.root_dir = dir_ + "/other";
  std::unique_ptr<CaCore> stranger = *CaCore::Create(other, absl::Now());
  std::vector<std::string> foreign =
      *stranger->Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
  EXPECT_EQ(core->AuthenticatePeer(foreign[0], absl::Now()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

// Root rotation without a restart: the CA's files replaced as the kubelet replaces a
// Secret volume's (a new timestamped directory, then one rename of the ..data symlink).
class CaCoreReloadTest : public CaCoreTest {
 protected:
  void SetUp() override {
    CaCoreTest::SetUp();
    options_.key_permissions = KeyPermissions::kSecretVolume;
    ASSERT_EQ(mkdir(options_.root_dir.c_str(), 0700), 0);
    for (const char* name : {"ca-key.pem", "ca-cert.pem"}) {
      std::filesystem::create_symlink(std::string("..data/") + name,
                                      options_.root_dir + "/" + name);
    }
  }
  // Publishes `key` and `chain` as the Secret's next version.
  void PublishSecret(const std::string& key_pem, const std::string& cert_pem) {
    const std::string version = "..v" + std::to_string(++versions_);
    const std::string dir = options_.root_dir + "/" + version;
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    Write(dir + "/ca-key.pem", key_pem, 0400);
    Write(dir + "/ca-cert.pem", cert_pem, 0400);
    std::filesystem::create_symlink(version, options_.root_dir + "/..data_tmp");
    std::filesystem::rename(options_.root_dir + "/..data_tmp",
                            options_.root_dir + "/..data");
  }
  void PublishRoot(const pki::CertificateAuthority& ca) {
    PublishSecret(*ca.key().ToPem(), ca.certificate().ToPem());
  }
  // Returns the root a certificate issued now chains to (the last of the response).
  static std::string IssuedRoot(const CaCore& core) {
    PendingCredential pending = *NewCredentialRequest("spiffe://cluster.local/ns/a/sa/b");
    absl::StatusOr<std::vector<std::string>> chain =
        core.Issue(pending.csr_pem, {"a", "b"}, 0, absl::Now());
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? chain->at(1) : "";
  }

  pki::CertificateAuthority old_ =
      *pki::CertificateAuthority::CreateRoot({.common_name = "old root"}, absl::Now());
  pki::CertificateAuthority next_ =
      *pki::CertificateAuthority::CreateRoot({.common_name = "next root"}, absl::Now());
  int versions_ = 0;
};

TEST_F(CaCoreReloadTest, SignsWithASecretSwappedInBySymlinkWithoutARestart) {
  PublishRoot(old_);
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  EXPECT_EQ(IssuedRoot(*core), old_.root().ToPem());
  EXPECT_EQ(*core->Reload(absl::Now()), false) << "nothing changed yet";

  PublishRoot(next_);
  absl::StatusOr<bool> swapped = core->Reload(absl::Now());
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_TRUE(*swapped);
  EXPECT_EQ(IssuedRoot(*core), next_.root().ToPem());
  EXPECT_EQ(core->trust_bundle_pem(), next_.root().ToPem());
  EXPECT_EQ(*core->Reload(absl::Now()), false);
}

TEST_F(CaCoreReloadTest, KeepsSigningWhenNewFilesAreRefusedAndSaysSoOnce) {
  PublishRoot(old_);
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  // A key that does not match its certificate (e.g. one of two files edited).
  PublishSecret(*next_.key().ToPem(), old_.certificate().ToPem());
  absl::StatusOr<bool> refused = core->Reload(absl::Now());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "CA files in " + options_.root_dir +
                ": CA: the key does not match the CA certificate");
  EXPECT_EQ(*core->Reload(absl::Now()), false) << "the same refusal is reported once";
  EXPECT_EQ(IssuedRoot(*core), old_.root().ToPem()) << "the old material stays";

  PublishRoot(next_);
  EXPECT_EQ(*core->Reload(absl::Now()), true);
  EXPECT_EQ(IssuedRoot(*core), next_.root().ToPem());
}

TEST_F(CaCoreReloadTest, PublishesAndDropsRootsOfTheExtraRootsFile) {
  PublishRoot(old_);
  options_.extra_roots_file = dir_ + "/extra-roots.pem";
  Write(options_.extra_roots_file, "", 0644);
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  EXPECT_EQ(core->trust_bundle_pem(), old_.root().ToPem());

  Write(options_.extra_roots_file, next_.root().ToPem(), 0644);
  EXPECT_EQ(*core->Reload(absl::Now()), true);
  EXPECT_EQ(core->trust_bundle_pem(), old_.root().ToPem() + next_.root().ToPem());

  // The switch: the next root signs, the old one is still published (listing both in
  // the extra roots publishes each once).
  Write(options_.extra_roots_file, old_.root().ToPem() + next_.root().ToPem(), 0644);
  PublishRoot(next_);
  EXPECT_EQ(*core->Reload(absl::Now()), true);
  EXPECT_EQ(core->trust_bundle_pem(), next_.root().ToPem() + old_.root().ToPem());

  Write(options_.extra_roots_file, "", 0644);
  EXPECT_EQ(*core->Reload(absl::Now()), true);
  EXPECT_EQ(core->trust_bundle_pem(), next_.root().ToPem());
}

TEST_F(CaCoreReloadTest, RefusesAnExtraRootsFileThatIsNotPem) {
  PublishRoot(old_);
  options_.extra_roots_file = dir_ + "/extra-roots.pem";
  Write(options_.extra_roots_file, "", 0644);
  std::unique_ptr<CaCore> core = *CaCore::Create(options_, absl::Now());
  Write(options_.extra_roots_file, "not a certificate", 0644);
  absl::StatusOr<bool> refused = core->Reload(absl::Now());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("extra roots: "), std::string::npos)
      << refused.status();
  EXPECT_EQ(core->trust_bundle_pem(), old_.root().ToPem());
}

}  // namespace
}  // namespace tandem::controlplane
