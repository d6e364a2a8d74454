#include "proxy/tls_context_manager.h"

#include <openssl/ssl.h>

#include <set>

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

class SessionCacheTest : public ::testing::Test {
 protected:
  // Stores a new session for `destination` and returns its address, to recognise it.
  const SSL_SESSION* StoreNew(const std::string& destination) {
    SSL_SESSION* session = SSL_SESSION_new(ctx_.get());
    cache_.Store(destination, session);
    return session;
  }

  bssl::UniquePtr<SSL_CTX> ctx_{SSL_CTX_new(TLS_method())};
  SessionCache cache_;
};

TEST_F(SessionCacheTest, HandsOutEveryTicketOfADestinationOnceNewestFirst) {
  const SSL_SESSION* first = StoreNew("10.0.0.1:443");
  const SSL_SESSION* second = StoreNew("10.0.0.1:443");
  const SSL_SESSION* other = StoreNew("10.0.0.2:443");
  EXPECT_EQ(cache_.Take("10.0.0.1:443").get(), second);
  EXPECT_EQ(cache_.Take("10.0.0.1:443").get(), first);
  EXPECT_EQ(cache_.Take("10.0.0.1:443"), nullptr);
  EXPECT_EQ(cache_.Take("10.0.0.2:443").get(), other);
  EXPECT_EQ(cache_.Take("10.0.0.3:443"), nullptr);
}

TEST_F(SessionCacheTest, KeepsABoundedQueuePerDestinationDroppingTheOldest) {
  const SSL_SESSION* oldest = StoreNew("10.0.0.1:443");
  std::set<const SSL_SESSION*> kept;
  for (size_t i = 0; i < SessionCache::kTicketsPerDestination; ++i) {
    kept.insert(StoreNew("10.0.0.1:443"));
  }
  std::set<const SSL_SESSION*> taken;
  while (bssl::UniquePtr<SSL_SESSION> s = cache_.Take("10.0.0.1:443")) {
    EXPECT_NE(s.get(), oldest);
    taken.insert(s.get());
    ASSERT_LE(taken.size(), SessionCache::kTicketsPerDestination);
  }
  EXPECT_EQ(taken, kept);
}

}  // namespace
}  // namespace tandem::proxy
