#ifndef TANDEM_PROXY_TLS_CONTEXT_MANAGER_H_
#define TANDEM_PROXY_TLS_CONTEXT_MANAGER_H_

#include <openssl/ssl.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/pki/certificate.h"
#include "common/pki/trust_bundle.h"
#include "common/secret_sink.h"
#include "common/spiffe_id.h"
#include "proxy/verified_chain_cache.h"

namespace tandem::proxy {

// ALPN protocol tandem proxies speak to each other.
inline constexpr char kMeshAlpn[] = "tandem-mtls/1";
// ALPN value every Istio sidecar offers on in-mesh mTLS, and which a PERMISSIVE
// istio-proxy inbound needs to see to terminate mTLS instead of passing the TLS bytes
// through to its app (docs/istio-interop.md has the sources).
inline constexpr char kIstioAlpn[] = "istio";
// What tandem's client offers, in order: its own protocol, then Istio's in-mesh value.
// Never "istio-peer-exchange": a peer that selects it writes Istio's metadata-exchange
// header into the byte stream, which tandem does not speak.
inline constexpr const char* kClientAlpns[] = {kMeshAlpn, kIstioAlpn};

// Client-side TLS session cache for resumption, keyed by destination "ip:port": a
// small queue of sessions (tickets) per destination, each handed out once. A TLS 1.3
// server sends two tickets per handshake, resumed ones included, so concurrent new
// connections to one destination almost all find a ticket. Thread-safe.
class SessionCache {
 public:
  // Tickets kept per destination; the oldest is dropped beyond it.
  static constexpr size_t kTicketsPerDestination = 16;

  void Store(const std::string& destination, SSL_SESSION* session);  // adopts
  // Takes the newest ticket for `destination` (null when none): TLS 1.3 tickets are
  // single-use, so two connections never get the same one.
  bssl::UniquePtr<SSL_SESSION> Take(const std::string& destination);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::deque<bssl::UniquePtr<SSL_SESSION>>> sessions_
      ABSL_GUARDED_BY(mu_);
};

// One published generation of TLS state: server and client SSL_CTX built from one
// validated secret. Immutable after publication except the client session cache and the
// verified-chain cache, which have their own locks. Connections hold a shared_ptr for their whole life, so
// a rotation never touches an open connection.
struct TlsSnapshot {
  bssl::UniquePtr<SSL_CTX> server;
  bssl::UniquePtr<SSL_CTX> client;
  pki::TrustBundle bundle;
  pki::Certificate leaf;
  // leaf.not_after(), read once: Current() checks it for every connection.
  absl::Time leaf_not_after;
  SpiffeId identity;
  std::string trust_domain;
  uint64_t generation = 0;
  std::unique_ptr<SessionCache> sessions = std::make_unique<SessionCache>();
  // Peer chains verified against `bundle`: a new bundle starts an empty one.
  std::unique_ptr<VerifiedChainCache> verified = std::make_unique<VerifiedChainCache>();
  std::string chain_pem;  // as delivered, leaf first: for the admin endpoint
};

// What a handshake's verification decided; attached to each SSL via ex_data.
struct PeerVerification {
  std::shared_ptr<TlsSnapshot> snapshot;  // keeps the bundle alive for the callback
  std::string destination{};              // client side: for the session cache
  pki::VerifyFailure failure = pki::VerifyFailure::kNone;
  std::string error{};
  // The verified peer's identity and leaf serial, kept so PeerOf() need not parse the
  // chain again; unset on resumed handshakes, which skip verification.
  std::optional<SpiffeId> identity{};
  std::string serial_hex{};
};

// Who the peer of a completed handshake is.
struct Peer {
  SpiffeId identity;
  std::string serial_hex;  // the leaf's serial, lower-case hex: for revocations
};

// Builds, validates and publishes TLS contexts from workload secrets: the one narrow
// interface (SecretSink) through which the PEM files, SIGHUP and the SDS client feed
// certificates. Build and validate happen on the caller's thread, off the data path;
// publication is one pointer swap under a mutex held only to copy a shared_ptr. A
// refused secret leaves the previous snapshot in force. Thread-safe: any thread.
class TlsContextManager : public SecretSink {
 public:
  struct Options {
    std::string trust_domain = "cluster.local";
    bool allow_tls12 = false;
  };
  explicit TlsContextManager(Options options);

  // Any thread. Parses, validates (key matches leaf, chain verifies against the
  // bundle, one SPIFFE ID in our trust domain), builds both contexts, publishes.
  absl::Status UpdateSecret(const WorkloadSecretPem& secret) override;

  // Any thread. The snapshot to serve with: null until a first secret was accepted
  // ("no certificate yet"), and null again once its certificate has expired (logged
  // once), so mTLS is refused and readiness drops instead of offering a certificate
  // every peer rejects.
  std::shared_ptr<TlsSnapshot> Current() const;
  // Any thread. The last accepted snapshot, expired or not (metrics, /certs).
  std::shared_ptr<TlsSnapshot> Latest() const;

  // Counters for metrics: accepted and refused updates.
  uint64_t updates_accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t updates_refused() const { return refused_.load(std::memory_order_relaxed); }
  std::string last_refusal() const;

  // Makes a new SSL for one connection (client or server side) bound to `snapshot`.
  static bssl::UniquePtr<SSL> NewServerSsl(const std::shared_ptr<TlsSnapshot>& snapshot);
  static bssl::UniquePtr<SSL> NewClientSsl(const std::shared_ptr<TlsSnapshot>& snapshot,
                                           const std::string& destination);
  static PeerVerification* GetVerification(const SSL* ssl);
  // Returns the verified peer's SPIFFE ID and leaf serial after a completed handshake
  // (also resumed ones), or an error when it is missing or outside our trust domain.
  // Parses the leaf at most once per connection (not at all after a full handshake).
  static absl::StatusOr<Peer> PeerOf(const SSL* ssl);

 private:
  absl::StatusOr<std::shared_ptr<TlsSnapshot>> Build(const WorkloadSecretPem& secret);

  const Options options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<TlsSnapshot> current_ ABSL_GUARDED_BY(mu_);
  std::string last_refusal_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  // The generation whose expiry was last logged: logged once, not per connection.
  mutable std::atomic<uint64_t> expiry_logged_{0};
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_TLS_CONTEXT_MANAGER_H_
