#ifndef TANDEM_PROXY_VERIFIED_CHAIN_CACHE_H_
#define TANDEM_PROXY_VERIFIED_CHAIN_CACHE_H_

#include <openssl/pool.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/pki/trust_bundle.h"
#include "common/spiffe_id.h"

namespace tandem::proxy {

// A peer chain that verified against one trust bundle: who it names, and when it
// verifies.
struct VerifiedChain {
  SpiffeId identity;
  std::string serial_hex;  // the leaf's, lower-case hex
  pki::Validity validity;
};

// Peer chains that verified against one TlsSnapshot's trust bundle, keyed by the
// SHA-256 of the certificates exactly as the peer sent them. A mesh peer presents the
// same chain on every connection until its certificate rotates: a hit skips parsing
// it and X509_verify_cert (the CA's signature check, chain building: the largest cost
// of a handshake side after its own key exchange and signatures). Only what decides the
// outcome and does not change with the bytes is skipped: the time is checked against the
// path's validity on every hit, the peer still proves its key in every handshake, and
// revocations are checked after it as before. Only successes are kept; refusals are
// verified again each time. Bounded: it starts over when full. Thread-safe: any thread;
// the lock is held to copy a shared_ptr.
class VerifiedChainCache {
 public:
  static constexpr size_t kMaxEntries = 1024;
  using Key = std::array<uint8_t, SHA256_DIGEST_LENGTH>;

  // The key of a chain as the peer sent it, leaf first.
  static Key KeyOf(const STACK_OF(CRYPTO_BUFFER)* chain);

  // The entry for `key` when `now` is strictly within its validity, else null.
  std::shared_ptr<const VerifiedChain> Find(const Key& key, absl::Time now) const;
  void Insert(const Key& key, VerifiedChain chain);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, std::shared_ptr<const VerifiedChain>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_VERIFIED_CHAIN_CACHE_H_
