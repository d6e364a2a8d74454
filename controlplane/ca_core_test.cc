#include "controlplane/ca_core.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "common/credential_request.h"
#include "common/pki/certificate.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace tandem::controlplane
