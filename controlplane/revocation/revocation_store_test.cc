#include "controlplane/revocation/revocation_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const std::string kId = "spiffe://cluster.local/ns/shop/sa/cart";

class RevocationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-revocation-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    dir_ = root_ + "/state";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::unique_ptr<RevocationStore> Open(absl::Time now = kNow) {
    absl::StatusOr<std::unique_ptr<RevocationStore>> store =
        RevocationStore::Open({dir_, absl::Hours(24)}, now);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  static mode_t ModeOf(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  std::string root_;
  std::string dir_;
};

TEST_F(RevocationStoreTest, PersistsAcrossReopenOwnerOnly) {
  {
    auto store = Open();
    ASSERT_TRUE(
        store->RevokeSerial("00:1F:3A", kNow + absl::Hours(2), "key leaked", true, kNow)
            .ok());
    ASSERT_TRUE(store->RevokeSpiffeId(kId, "compromised", false, kNow).ok());
    EXPECT_EQ(store->generation(), 2u);
  }
  EXPECT_EQ(ModeOf(dir_), 0700);
  EXPECT_EQ(ModeOf(dir_ + "/revocations.jsonl"), 0600);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/revocations.jsonl.tmp"))
      << "the temporary file is renamed over the list";

  auto store = Open();
  std::vector<tandem::policy::v1::Revocation> live = store->Live(kNow);
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].spiffe_id(), kId);
  EXPECT_GE(live[0].expires_unix_seconds(), absl::ToUnixSeconds(kNow + absl::Hours(24)));
  EXPECT_FALSE(live[0].close_open_connections());
  EXPECT_EQ(live[1].serial_hex(), "1f3a") << "normalised as X.509 prints it";
  EXPECT_EQ(live[1].expires_unix_seconds(), absl::ToUnixSeconds(kNow + absl::Hours(2)));
  EXPECT_EQ(live[1].reason(), "key leaked");
  EXPECT_TRUE(live[1].close_open_connections());
  EXPECT_TRUE(store->IsSerialRevoked("1F3A", kNow));
  EXPECT_TRUE(store->IsSpiffeIdRevoked(kId, kNow));
  EXPECT_FALSE(store->IsSpiffeIdRevoked("spiffe://cluster.local/ns/shop/sa/web", kNow));
}

TEST_F(RevocationStoreTest, EntriesExpireAndAreDroppedFromTheFile) {
  auto store = Open();
  ASSERT_TRUE(store->RevokeSerial("ab", kNow + absl::Minutes(5), "", false, kNow).ok());
  ASSERT_TRUE(store->RevokeSpiffeId(kId, "", false, kNow).ok());
  const absl::Time later = kNow + absl::Minutes(6);
  EXPECT_FALSE(store->IsSerialRevoked("ab", later)) << "a serial lives to its not-after";
  EXPECT_TRUE(store->IsSpiffeIdRevoked(kId, later));
  EXPECT_EQ(store->Live(later).size(), 1u);
  EXPECT_EQ(*store->DropExpired(later), 1u);
  EXPECT_EQ(*store->DropExpired(later), 0u);
  EXPECT_EQ(store->generation(), 3u);
  EXPECT_EQ(ReadFileToString(store->path())->find("\"ab\""), std::string::npos);

  const absl::Time after_max_ttl = kNow + absl::Hours(24) + absl::Seconds(2);
  EXPECT_FALSE(store->IsSpiffeIdRevoked(kId, after_max_ttl))
      << "an identity lives for the CA's maximum TTL";
  store.reset();
  EXPECT_TRUE(Open(after_max_ttl)->Live(after_max_ttl).empty());
  EXPECT_EQ(*ReadFileToString(dir_ + "/revocations.jsonl"), "")
      << "entries expired at start are dropped from the file";
}

TEST_F(RevocationStoreTest, TellsTheListenerOfEachChangeUntilItIsCleared) {
  std::unique_ptr<RevocationStore> store = Open();
  int calls = 0;
  store->SetChangeListener([&calls] { ++calls; });
  ASSERT_TRUE(store->RevokeSerial("0A", kNow + absl::Hours(1), "", false, kNow).ok());
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(store->DropExpired(kNow + absl::Hours(2)).ok());  // the serial expired
  EXPECT_EQ(calls, 2);
  store->SetChangeListener(nullptr);
  ASSERT_TRUE(store->RevokeSerial("0B", kNow + absl::Hours(1), "", false, kNow).ok());
  EXPECT_EQ(calls, 2);
}

TEST_F(RevocationStoreTest, RevokingAgainNeverShortens) {
  auto store = Open();
  ASSERT_TRUE(store->RevokeSpiffeId(kId, "first", false, kNow + absl::Hours(1)).ok());
  ASSERT_TRUE(store->RevokeSpiffeId(kId, "second", true, kNow).ok());
  std::vector<tandem::policy::v1::Revocation> live = store->Live(kNow);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].reason(), "second");
  EXPECT_GE(live[0].expires_unix_seconds(), absl::ToUnixSeconds(kNow + absl::Hours(25)));
}

TEST_F(RevocationStoreTest, RefusesBadInput) {
  auto store = Open();
  struct Case {
    std::string serial;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"xyz", "serial \"xyz\" is not hexadecimal (e.g. 1f3a9c or 1F:3A:9C)"},
           {"", "serial \"\" is not hexadecimal (e.g. 1f3a9c or 1F:3A:9C)"},
           {"000", "serial 0 is not a certificate's"},
           {std::string(41, 'f'), "serial has 41 hex digits; X.509 allows at most 40"}}) {
    absl::StatusOr<tandem::policy::v1::Revocation> r =
        store->RevokeSerial(c.serial, kNow + absl::Hours(1), "", false, kNow);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(r.status().message()), c.error);
  }
  absl::StatusOr<tandem::policy::v1::Revocation> past =
      store->RevokeSerial("ab", kNow - absl::Seconds(1), "", false, kNow);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(past.status().message()),
            "not-after 2027-01-15T07:59:59Z is past: that certificate is already dead");
  EXPECT_EQ(store->RevokeSpiffeId("spiffe:/x", "", false, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->Live(kNow).empty());
  EXPECT_EQ(store->generation(), 0u);
}

TEST_F(RevocationStoreTest, RefusesAnOpenStateDirectoryAndACorruptFile) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
  absl::StatusOr<std::unique_ptr<RevocationStore>> open =
      RevocationStore::Open({dir_}, kNow);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(open.status().message().find("chmod 700"), std::string::npos);

  ASSERT_EQ(chmod(dir_.c_str(), 0700), 0);
  std::ofstream(dir_ + "/revocations.jsonl")
      << "{\"spiffeId\":\"spiffe://a/b\"}\nnot json\n";
  open = RevocationStore::Open({dir_}, kNow);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(open.status().message().find("revocations.jsonl:2: not a revocation entry"),
            std::string::npos)
      << open.status();
}

TEST_F(RevocationStoreTest, ALeftoverTemporaryFileIsIgnoredAndReplaced) {
  { ASSERT_TRUE(Open()->RevokeSpiffeId(kId, "", false, kNow).ok()); }
  // A crash between write and rename leaves a partial temporary file behind.
  std::ofstream(dir_ + "/revocations.jsonl.tmp") << "{\"spiffeId\":";
  ASSERT_EQ(chmod((dir_ + "/revocations.jsonl.tmp").c_str(), 0644), 0);
  auto store = Open();
  EXPECT_EQ(store->Live(kNow).size(), 1u);
  ASSERT_TRUE(store->RevokeSerial("cd", kNow + absl::Hours(1), "", false, kNow).ok());
  EXPECT_EQ(ModeOf(dir_ + "/revocations.jsonl"), 0600);
  EXPECT_EQ(Open()->Live(kNow).size(), 2u);
}

TEST_F(RevocationStoreTest, ARevocationThatCannotBePersistedIsNotInForce) {
  auto store = Open();
  // The temporary file's path is taken by a directory: the write fails.
  ASSERT_EQ(mkdir((dir_ + "/revocations.jsonl.tmp").c_str(), 0700), 0);
  absl::StatusOr<tandem::policy::v1::Revocation> r =
      store->RevokeSpiffeId(kId, "", false, kNow);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(store->IsSpiffeIdRevoked(kId, kNow))
      << "a restart would forget it, so it must not be in force now either";
  EXPECT_EQ(store->generation(), 0u);
}

}  // namespace
}  // namespace tandem::controlplane
