#include "proxy/verified_chain_cache.h"

#include <utility>

namespace tandem::proxy {

VerifiedChainCache::Key VerifiedChainCache::KeyOf(const STACK_OF(CRYPTO_BUFFER)* chain) {
  SHA256_CTX sha;
  SHA256_Init(&sha);
  for (size_t i = 0; chain != nullptr && i < sk_CRYPTO_BUFFER_num(chain); ++i) {
    const CRYPTO_BUFFER* cert = sk_CRYPTO_BUFFER_value(chain, i);
    // Each certificate's length first, so no two different chains hash the same bytes.
    uint64_t len = CRYPTO_BUFFER_len(cert);
    SHA256_Update(&sha, &len, sizeof(len));
    SHA256_Update(&sha, CRYPTO_BUFFER_data(cert), len);
  }
  Key key;
  SHA256_Final(key.data(), &sha);
  return key;
}

std::shared_ptr<const VerifiedChain> VerifiedChainCache::Find(const Key& key,
                                                              absl::Time now) const {
  std::shared_ptr<const VerifiedChain> entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    entry = it->second;
  }
  // At the bounds themselves, full verification decides.
  if (now <= entry->validity.not_before || now >= entry->validity.not_after)
    return nullptr;
  return entry;
}

void VerifiedChainCache::Insert(const Key& key, VerifiedChain chain) {
  auto entry = std::make_shared<const VerifiedChain>(std::move(chain));
  // Freed after the lock is released.
  absl::flat_hash_map<Key, std::shared_ptr<const VerifiedChain>> dropped;
  absl::MutexLock lock(&mu_);
  if (entries_.size() >= kMaxEntries && !entries_.contains(key)) dropped.swap(entries_);
  entries_[key] = std::move(entry);
}

}  // namespace tandem::proxy
