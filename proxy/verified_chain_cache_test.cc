#include "proxy/verified_chain_cache.h"

#include <openssl/pool.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

// A chain of CRYPTO_BUFFERs holding `certs`' bytes, leaf first.
bssl::UniquePtr<STACK_OF(CRYPTO_BUFFER)> Chain(const std::vector<std::string>& certs) {
  bssl::UniquePtr<STACK_OF(CRYPTO_BUFFER)> chain(sk_CRYPTO_BUFFER_new_null());
  for (const std::string& der : certs) {
    CRYPTO_BUFFER* buf = CRYPTO_BUFFER_new(reinterpret_cast<const uint8_t*>(der.data()),
                                           der.size(), nullptr);
    sk_CRYPTO_BUFFER_push(chain.get(), buf);
  }
  return chain;
}

VerifiedChainCache::Key KeyOf(const std::vector<std::string>& certs) {
  return VerifiedChainCache::KeyOf(Chain(certs).get());
}

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

VerifiedChain Entry(const std::string& serial) {
  return VerifiedChain{*SpiffeId::Parse("spiffe://cluster.local/ns/a/sa/b"), serial,
                       pki::Validity{kStart, kStart + absl::Hours(1)}};
}

TEST(VerifiedChainCacheTest, KeysTheExactCertificatesInTheirOrder) {
  EXPECT_EQ(KeyOf({"leaf", "intermediate"}), KeyOf({"leaf", "intermediate"}));
  EXPECT_NE(KeyOf({"leaf", "intermediate"}), KeyOf({"intermediate", "leaf"}));
  EXPECT_NE(KeyOf({"leaf"}), KeyOf({"leaf", "intermediate"}));
  EXPECT_NE(KeyOf({"leaf"}), KeyOf({"leag"}));
  // The same bytes cut differently are a different chain.
  EXPECT_NE(KeyOf({"leafinter", "mediate"}), KeyOf({"leaf", "intermediate"}));
}

TEST(VerifiedChainCacheTest, FindsAChainOnlyStrictlyWithinItsValidity) {
  VerifiedChainCache cache;
  VerifiedChainCache::Key key = KeyOf({"leaf"});
  cache.Insert(key, Entry("1a"));
  std::shared_ptr<const VerifiedChain> hit = cache.Find(key, kStart + absl::Minutes(30));
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->serial_hex, "1a");
  EXPECT_EQ(hit->identity.ToString(), "spiffe://cluster.local/ns/a/sa/b");
  EXPECT_EQ(cache.Find(key, kStart), nullptr);
  EXPECT_EQ(cache.Find(key, kStart - absl::Seconds(1)), nullptr);
  EXPECT_EQ(cache.Find(key, kStart + absl::Hours(1)), nullptr);
  EXPECT_EQ(cache.Find(key, kStart + absl::Hours(2)), nullptr);
  EXPECT_EQ(cache.Find(KeyOf({"other leaf"}), kStart + absl::Minutes(30)), nullptr);
}

TEST(VerifiedChainCacheTest, StartsOverWhenFull) {
  VerifiedChainCache cache;
  absl::Time now = kStart + absl::Minutes(1);
  for (size_t i = 0; i < VerifiedChainCache::kMaxEntries; ++i) {
    cache.Insert(KeyOf({std::to_string(i)}), Entry(std::to_string(i)));
  }
  ASSERT_NE(cache.Find(KeyOf({"0"}), now), nullptr);
  // Replacing a known chain keeps the others.
  cache.Insert(KeyOf({"0"}), Entry("new"));
  EXPECT_EQ(cache.Find(KeyOf({"0"}), now)->serial_hex, "new");
  EXPECT_NE(cache.Find(KeyOf({"1"}), now), nullptr);
  cache.Insert(KeyOf({"one too many"}), Entry("x"));
  EXPECT_EQ(cache.Find(KeyOf({"0"}), now), nullptr);
  EXPECT_EQ(cache.Find(KeyOf({"1"}), now), nullptr);
  EXPECT_NE(cache.Find(KeyOf({"one too many"}), now), nullptr);
}

}  // namespace
}  // namespace tandem::proxy
