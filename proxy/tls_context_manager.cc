#include "proxy/tls_context_manager.h"

#include <openssl/err.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstring>
#include <iterator>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/pki/workload_credentials.h"

namespace tandem::proxy {
namespace {

// Destinations with cached tickets; beyond it the cache starts over.
constexpr size_t kMaxCachedDestinations = 4096;

int VerificationIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr,
                           [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
                             delete static_cast<PeerVerification*>(ptr);
                           });
  return index;
}

// Parses the peer's certificates, leaf first; at most `max` of them.
std::vector<pki::Certificate> PeerChain(const SSL* ssl, size_t max = SIZE_MAX) {
  std::vector<pki::Certificate> chain;
  const STACK_OF(CRYPTO_BUFFER)* buffers = SSL_get0_peer_certificates(ssl);
  if (buffers == nullptr) return chain;
  for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(buffers) && i < max; ++i) {
    const CRYPTO_BUFFER* buf = sk_CRYPTO_BUFFER_value(buffers, i);
    absl::StatusOr<pki::Certificate> cert = pki::Certificate::FromDer(std::string(
        reinterpret_cast<const char*>(CRYPTO_BUFFER_data(buf)), CRYPTO_BUFFER_len(buf)));
    if (!cert.ok()) return {};
    chain.push_back(*std::move(cert));
  }
  return chain;
}

// Verifies the peer's chain against the snapshot's bundle. Identity checks that depend
// on the connection (expected server, allow-lists) happen after the handshake, so they
// also cover resumed sessions.
ssl_verify_result_t VerifyPeer(SSL* ssl, uint8_t* out_alert) {
  PeerVerification* v = TlsContextManager::GetVerification(ssl);
  if (v == nullptr) return ssl_verify_invalid;
  absl::Time now = absl::Now();
  VerifiedChainCache::Key key =
      VerifiedChainCache::KeyOf(SSL_get0_peer_certificates(ssl));
  if (std::shared_ptr<const VerifiedChain> known =
          v->snapshot->verified->Find(key, now)) {
    v->identity = known->identity;
    v->serial_hex = known->serial_hex;
    return ssl_verify_ok;
  }
  std::vector<pki::Certificate> chain = PeerChain(ssl);
  pki::Validity validity;
  absl::StatusOr<SpiffeId> id =
      v->snapshot->bundle.Verify(chain, now, &v->failure, &validity);
  if (!id.ok()) {
    v->error = std::string(id.status().message());
    *out_alert = v->failure == pki::VerifyFailure::kExpired ? SSL_AD_CERTIFICATE_EXPIRED
                                                            : SSL_AD_BAD_CERTIFICATE;
    return ssl_verify_invalid;
  }
  if (id->trust_domain() != v->snapshot->trust_domain) {
    v->failure = pki::VerifyFailure::kBadIdentity;
    v->error = absl::StrCat("peer ", id->ToString(), " is outside trust domain ",
                            v->snapshot->trust_domain);
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return ssl_verify_invalid;
  }
  v->identity = *std::move(id);
  v->serial_hex = chain.front().SerialHex();
  v->snapshot->verified->Insert(key,
                                VerifiedChain{*v->identity, v->serial_hex, validity});
  return ssl_verify_ok;
}

// Returns the offered protocol equal to `name` in the ClientHello's ALPN list `in`
// (BoringSSL has checked its framing), or null.
const uint8_t* FindAlpn(const uint8_t* in, unsigned in_len, std::string_view name) {
  for (unsigned i = 0; i < in_len;) {
    uint8_t len = in[i];
    if (i + 1 + len > in_len) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == name) {
      return in + i + 1;
    }
    i += 1 + len;
  }
  return nullptr;
}

// Server preference, whatever the client's order: tandem's own protocol, then Istio's
// "istio" (every Istio sidecar offers it); "istio-peer-exchange" never (the Istio
// client would then send its metadata-exchange header into the app's stream). Clients
// offering neither (openssl s_client, an Istio list of only HTTP values) get no ALPN
// and are still served: ALPN here labels the peer, it does not change the bytes.
int SelectAlpn(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
               unsigned in_len, void*) {
  for (std::string_view name :
       {std::string_view(kMeshAlpn), std::string_view(kIstioAlpn)}) {
    if (const uint8_t* found = FindAlpn(in, in_len, name)) {
      *out = found;
      *out_len = static_cast<uint8_t>(name.size());
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// kClientAlpns in wire form: each name prefixed by its length.
const std::string& ClientAlpnWire() {
  static const std::string* wire = [] {
    auto* out = new std::string;
    for (const char* name : kClientAlpns) {
      out->push_back(static_cast<char>(std::strlen(name)));
      out->append(name);
    }
    return out;
  }();
  return *wire;
}

int NewClientSession(SSL* ssl, SSL_SESSION* session) {
  PeerVerification* v = TlsContextManager::GetVerification(ssl);
  if (v == nullptr || v->destination.empty()) return 0;
  v->snapshot->sessions->Store(v->destination, session);
  return 1;  // we took the reference
}

// Signature schemes accepted from the peer, in preference order: ECDSA for tandem's
// own keys; RSA-PSS (the only RSA CertificateVerify TLS 1.3 allows) for RSA leaves,
// e.g. from Istio's agent, which makes RSA-2048 keys by default. PKCS#1 v1.5 is listed
// because the same list also names the signatures accepted on certificates (RSA CAs
// sign with sha256WithRSAEncryption) and TLS 1.2 uses it; BoringSSL never accepts it
// in a TLS 1.3 CertificateVerify.
constexpr uint16_t kVerifySignatureAlgorithms[] = {
    SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256,
    SSL_SIGN_RSA_PKCS1_SHA256,       SSL_SIGN_ECDSA_SECP384R1_SHA384,
    SSL_SIGN_RSA_PSS_RSAE_SHA384,    SSL_SIGN_RSA_PKCS1_SHA384,
    SSL_SIGN_RSA_PSS_RSAE_SHA512,    SSL_SIGN_RSA_PKCS1_SHA512,
};

absl::Status ConfigureCommon(SSL_CTX* ctx, const pki::WorkloadCredentials& creds,
                             bool allow_tls12) {
  if (!SSL_CTX_set_min_proto_version(ctx,
                                     allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set1_curves_list(ctx, "X25519:P-256") ||
      !SSL_CTX_set_verify_algorithm_prefs(ctx, kVerifySignatureAlgorithms,
                                          std::size(kVerifySignatureAlgorithms))) {
    ERR_clear_error();
    return absl::InternalError("TLS context setup failed");
  }
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;
  std::vector<CRYPTO_BUFFER*> chain_ptrs;
  for (const pki::Certificate& cert : creds.chain) {
    std::string der = cert.ToDer();
    chain.emplace_back(CRYPTO_BUFFER_new(reinterpret_cast<const uint8_t*>(der.data()),
                                         der.size(), nullptr));
    if (der.empty() || chain.back() == nullptr) {
      return absl::InternalError("TLS context: chain setup failed");
    }
    chain_ptrs.push_back(chain.back().get());
  }
  if (!SSL_CTX_set_chain_and_key(ctx, chain_ptrs.data(), chain_ptrs.size(),
                                 creds.key.get(), nullptr)) {
    ERR_clear_error();
    return absl::InternalError("TLS context: certificate or key setup failed");
  }
  // TLS 1.2 names the certificate's key type in the suite: ECDSA and RSA leaves.
  if (allow_tls12 && !SSL_CTX_set_strict_cipher_list(ctx,
                                                     "ECDHE-ECDSA-AES128-GCM-SHA256:"
                                                     "ECDHE-ECDSA-CHACHA20-POLY1305:"
                                                     "ECDHE-RSA-AES128-GCM-SHA256:"
                                                     "ECDHE-RSA-CHACHA20-POLY1305")) {
    return absl::InternalError("TLS context: cipher setup failed");
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return absl::OkStatus();
}

}  // namespace

void SessionCache::Store(const std::string& destination, SSL_SESSION* session) {
  bssl::UniquePtr<SSL_SESSION> adopted(session);
  bssl::UniquePtr<SSL_SESSION> dropped;  // freed after the lock is released
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= kMaxCachedDestinations && !sessions_.contains(destination)) {
    sessions_.clear();
  }
  std::deque<bssl::UniquePtr<SSL_SESSION>>& queue = sessions_[destination];
  if (queue.size() >= kTicketsPerDestination) {
    dropped = std::move(queue.front());
    queue.pop_front();
  }
  queue.push_back(std::move(adopted));
}

bssl::UniquePtr<SSL_SESSION> SessionCache::Take(const std::string& destination) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(destination);
  if (it == sessions_.end()) return nullptr;
  // The newest ticket is the likeliest still valid (the server rotates its keys).
  bssl::UniquePtr<SSL_SESSION> session = std::move(it->second.back());
  it->second.pop_back();
  if (it->second.empty()) sessions_.erase(it);
  return session;
}

TlsContextManager::TlsContextManager(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<TlsSnapshot>> TlsContextManager::Build(
    const WorkloadSecretPem& secret) {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(secret.private_key);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::vector<pki::Certificate>> chain =
      pki::Certificate::ChainFromPem(secret.cert_chain);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<pki::TrustBundle> bundle =
      pki::TrustBundle::FromPem(secret.trust_bundle);
  if (!bundle.ok()) return bundle.status();
  pki::WorkloadCredentials creds{*key, *chain, *bundle};
  absl::StatusOr<SpiffeId> id = creds.Validate(absl::Now());
  if (!id.ok()) return id.status();
  if (id->trust_domain() != options_.trust_domain) {
    return absl::InvalidArgumentError(absl::StrCat("credentials: ", id->ToString(),
                                                   " is outside trust domain ",
                                                   options_.trust_domain));
  }

  // Certificates as CRYPTO_BUFFERs only: with TLS_method BoringSSL would also parse
  // every peer certificate (and a server's list of CA names) into X509 objects, which
  // verification (VerifyPeer) does not use, and free them again with the session.
  auto snapshot = std::make_shared<TlsSnapshot>(TlsSnapshot{
      .server = bssl::UniquePtr<SSL_CTX>(SSL_CTX_new(TLS_with_buffers_method())),
      .client = bssl::UniquePtr<SSL_CTX>(SSL_CTX_new(TLS_with_buffers_method())),
      .bundle = *bundle,
      .leaf = creds.leaf(),
      .leaf_not_after = creds.leaf().not_after(),
      .identity = *id,
      .trust_domain = options_.trust_domain,
      .chain_pem = secret.cert_chain});
  if (!snapshot->server || !snapshot->client) {
    return absl::InternalError("SSL_CTX allocation failed");
  }
  for (SSL_CTX* ctx : {snapshot->server.get(), snapshot->client.get()}) {
    if (absl::Status s = ConfigureCommon(ctx, creds, options_.allow_tls12); !s.ok())
      return s;
  }
  // Server: client certificates required and verified; tickets on (BoringSSL rotates
  // ticket keys by itself; each rotation of our certificate also starts fresh keys).
  SSL_CTX_set_custom_verify(snapshot->server.get(),
                            SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                            VerifyPeer);
  SSL_CTX_set_alpn_select_cb(snapshot->server.get(), SelectAlpn, nullptr);
  SSL_CTX_set_session_cache_mode(snapshot->server.get(), SSL_SESS_CACHE_OFF);
  // Client: verify the server, offer our ALPN list, cache sessions per destination.
  SSL_CTX_set_custom_verify(snapshot->client.get(), SSL_VERIFY_PEER, VerifyPeer);
  const std::string& alpn = ClientAlpnWire();
  if (SSL_CTX_set_alpn_protos(snapshot->client.get(),
                              reinterpret_cast<const uint8_t*>(alpn.data()),
                              alpn.size()) != 0) {
    return absl::InternalError("TLS context: ALPN setup failed");
  }
  SSL_CTX_set_session_cache_mode(snapshot->client.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(snapshot->client.get(), NewClientSession);
  return snapshot;
}

absl::Status TlsContextManager::UpdateSecret(const WorkloadSecretPem& secret) {
  absl::StatusOr<std::shared_ptr<TlsSnapshot>> snapshot = Build(secret);
  absl::MutexLock lock(&mu_);
  if (!snapshot.ok()) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    last_refusal_ = std::string(snapshot.status().message());
    return snapshot.status();
  }
  (*snapshot)->generation = ++generation_;
  current_ = *std::move(snapshot);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

std::shared_ptr<TlsSnapshot> TlsContextManager::Current() const {
  std::shared_ptr<TlsSnapshot> snapshot = Latest();
  if (snapshot == nullptr || absl::Now() < snapshot->leaf_not_after) return snapshot;
  if (expiry_logged_.exchange(snapshot->generation) != snapshot->generation) {
    log::Error(
        "proxy", "certificate expired: mTLS refused until a new one arrives",
        {{"serial", snapshot->leaf.SerialHex()},
         {"not_after", absl::FormatTime(absl::RFC3339_sec, snapshot->leaf.not_after(),
                                        absl::UTCTimeZone())}});
  }
  return nullptr;
}

std::shared_ptr<TlsSnapshot> TlsContextManager::Latest() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::string TlsContextManager::last_refusal() const {
  absl::MutexLock lock(&mu_);
  return last_refusal_;
}

PeerVerification* TlsContextManager::GetVerification(const SSL* ssl) {
  return static_cast<PeerVerification*>(SSL_get_ex_data(ssl, VerificationIndex()));
}

bssl::UniquePtr<SSL> TlsContextManager::NewServerSsl(
    const std::shared_ptr<TlsSnapshot>& snapshot) {
  bssl::UniquePtr<SSL> ssl(SSL_new(snapshot->server.get()));
  if (!ssl) return nullptr;
  SSL_set_ex_data(ssl.get(), VerificationIndex(),
                  new PeerVerification{.snapshot = snapshot});
  SSL_set_accept_state(ssl.get());
  return ssl;
}

bssl::UniquePtr<SSL> TlsContextManager::NewClientSsl(
    const std::shared_ptr<TlsSnapshot>& snapshot, const std::string& destination) {
  bssl::UniquePtr<SSL> ssl(SSL_new(snapshot->client.get()));
  if (!ssl) return nullptr;
  SSL_set_ex_data(ssl.get(), VerificationIndex(),
                  new PeerVerification{.snapshot = snapshot, .destination = destination});
  if (bssl::UniquePtr<SSL_SESSION> session = snapshot->sessions->Take(destination)) {
    SSL_set_session(ssl.get(), session.get());
  }
  SSL_set_connect_state(ssl.get());
  return ssl;
}

absl::StatusOr<Peer> TlsContextManager::PeerOf(const SSL* ssl) {
  PeerVerification* v = GetVerification(ssl);
  // Verified in this handshake: identity and serial are known, trust domain checked.
  if (v != nullptr && v->identity.has_value()) return Peer{*v->identity, v->serial_hex};
  // Resumed: the session kept the peer's certificates; the leaf is enough.
  std::vector<pki::Certificate> chain = PeerChain(ssl, /*max=*/1);
  if (chain.empty()) return absl::UnauthenticatedError("peer presented no certificate");
  absl::StatusOr<SpiffeId> id = chain.front().GetSpiffeId();
  if (!id.ok()) return absl::PermissionDeniedError(std::string(id.status().message()));
  if (v != nullptr && id->trust_domain() != v->snapshot->trust_domain) {
    return absl::PermissionDeniedError("peer is outside our trust domain");
  }
  return Peer{*std::move(id), chain.front().SerialHex()};
}

}  // namespace tandem::proxy
