// The CPU floor of one mTLS handshake with the BoringSSL tandem links: the public-key
// operations alone (ECDSA P-256 sign/verify, X25519), and a complete in-memory TLS 1.3
// mutual handshake (full and resumed) with the same certificates bench/run.sh makes.
// bench/run.sh compares tandem-proxy's measured CPU per connection with these.
//   TANDEM_BENCH_CERTS=DIR build/bench/handshake_floor_benchmark
// DIR holds ca.crt, client.crt/.key, server.crt/.key (PEM). Without it only the
// public-key benchmarks run. Single-threaded; no sockets.
#include <openssl/bio.h>
#include <openssl/curve25519.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdh.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "benchmark/benchmark.h"

namespace {

constexpr size_t kMaxDerSig = 80;  // a DER P-256 ECDSA signature is at most 72 bytes

struct Digest {
  uint8_t bytes[SHA256_DIGEST_LENGTH];
  Digest() { SHA256(reinterpret_cast<const uint8_t*>("bench"), 5, bytes); }
};

bssl::UniquePtr<EC_KEY> NewP256Key() {
  bssl::UniquePtr<EC_KEY> key(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!key || !EC_KEY_generate_key(key.get())) std::abort();
  return key;
}

void BM_EcdsaP256Sign(benchmark::State& state) {
  bssl::UniquePtr<EC_KEY> key = NewP256Key();
  Digest d;
  uint8_t sig[kMaxDerSig];
  for (auto _ : state) {
    unsigned sig_len = sizeof(sig);
    if (!ECDSA_sign(0, d.bytes, sizeof(d.bytes), sig, &sig_len, key.get())) std::abort();
    benchmark::DoNotOptimize(sig_len);
  }
}
BENCHMARK(BM_EcdsaP256Sign);

void BM_EcdsaP256Verify(benchmark::State& state) {
  bssl::UniquePtr<EC_KEY> key = NewP256Key();
  Digest d;
  uint8_t sig[kMaxDerSig];
  unsigned sig_len = sizeof(sig);
  if (!ECDSA_sign(0, d.bytes, sizeof(d.bytes), sig, &sig_len, key.get())) std::abort();
  for (auto _ : state) {
    if (ECDSA_verify(0, d.bytes, sizeof(d.bytes), sig, sig_len, key.get()) != 1) {
      std::abort();
    }
  }
}
BENCHMARK(BM_EcdsaP256Verify);

void BM_X25519KeygenAndAgree(benchmark::State& state) {
  uint8_t peer_pub[32], peer_priv[32];
  X25519_keypair(peer_pub, peer_priv);
  for (auto _ : state) {
    uint8_t pub[32], priv[32], shared[32];
    X25519_keypair(pub, priv);
    if (!X25519(shared, priv, peer_pub)) std::abort();
    benchmark::DoNotOptimize(shared);
  }
}
BENCHMARK(BM_X25519KeygenAndAgree);

// The alternative key exchange: P-256 ECDHE (key generation + agreement), which
// BoringSSL implements in assembly while its X25519 here is portable C.
void BM_EcdhP256KeygenAndAgree(benchmark::State& state) {
  bssl::UniquePtr<EC_KEY> peer = NewP256Key();
  const EC_POINT* peer_pub = EC_KEY_get0_public_key(peer.get());
  for (auto _ : state) {
    bssl::UniquePtr<EC_KEY> mine = NewP256Key();
    uint8_t shared[32];
    if (ECDH_compute_key(shared, sizeof(shared), peer_pub, mine.get(), nullptr) !=
        sizeof(shared)) {
      std::abort();
    }
    benchmark::DoNotOptimize(shared);
  }
}
BENCHMARK(BM_EcdhP256KeygenAndAgree);

// Public-key work one side of an mTLS 1.3 handshake cannot avoid: sign its
// CertificateVerify, verify the peer's CertificateVerify and the peer leaf's signature
// by the CA, one X25519 key generation and agreement.
void BM_PublicKeyFloorPerSide(benchmark::State& state) {
  bssl::UniquePtr<EC_KEY> mine = NewP256Key();
  bssl::UniquePtr<EC_KEY> peer = NewP256Key();
  Digest d;
  uint8_t peer_sig[kMaxDerSig];
  unsigned peer_sig_len = sizeof(peer_sig);
  if (!ECDSA_sign(0, d.bytes, sizeof(d.bytes), peer_sig, &peer_sig_len, peer.get())) {
    std::abort();
  }
  uint8_t peer_pub[32], peer_priv[32];
  X25519_keypair(peer_pub, peer_priv);
  for (auto _ : state) {
    uint8_t sig[kMaxDerSig];
    unsigned sig_len = sizeof(sig);
    if (!ECDSA_sign(0, d.bytes, sizeof(d.bytes), sig, &sig_len, mine.get())) std::abort();
    for (int i = 0; i < 2; ++i) {
      if (ECDSA_verify(0, d.bytes, sizeof(d.bytes), peer_sig, peer_sig_len, peer.get()) !=
          1) {
        std::abort();
      }
    }
    uint8_t pub[32], priv[32], shared[32];
    X25519_keypair(pub, priv);
    if (!X25519(shared, priv, peer_pub)) std::abort();
    benchmark::DoNotOptimize(shared);
  }
}
BENCHMARK(BM_PublicKeyFloorPerSide);

// The newest ticket the client received (TLS 1.3 sends tickets after the handshake).
bssl::UniquePtr<SSL_SESSION>& LastTicket() {
  static bssl::UniquePtr<SSL_SESSION> session;
  return session;
}

int KeepTicket(SSL*, SSL_SESSION* session) {
  LastTicket().reset(session);
  return 1;  // takes ownership
}

// Both SSL_CTXs of an in-memory mTLS pair, configured as run.sh's proxies are: TLS 1.3,
// X25519 and P-256, client certificate required and verified against ca.crt.
struct TlsPair {
  bssl::UniquePtr<SSL_CTX> client;
  bssl::UniquePtr<SSL_CTX> server;
};

bool Configure(SSL_CTX* ctx, const std::string& dir, const char* who) {
  std::string crt = dir + "/" + who + ".crt", key = dir + "/" + who + ".key";
  std::string ca = dir + "/ca.crt";
  return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) &&
         SSL_CTX_set1_curves_list(ctx, "X25519:P-256") &&
         SSL_CTX_use_certificate_chain_file(ctx, crt.c_str()) &&
         SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) &&
         SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
}

const TlsPair* Pair() {
  static const TlsPair* pair = [] {
    const char* dir = std::getenv("TANDEM_BENCH_CERTS");
    if (dir == nullptr) return static_cast<TlsPair*>(nullptr);
    auto* p = new TlsPair{bssl::UniquePtr<SSL_CTX>(SSL_CTX_new(TLS_method())),
                          bssl::UniquePtr<SSL_CTX>(SSL_CTX_new(TLS_method()))};
    if (!Configure(p->client.get(), dir, "client") ||
        !Configure(p->server.get(), dir, "server")) {
      ERR_print_errors_fp(stderr);
      std::abort();
    }
    SSL_CTX_set_verify(p->client.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_verify(p->server.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
    SSL_CTX_set_session_cache_mode(p->client.get(),
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(p->client.get(), KeepTicket);
    return p;
  }();
  return pair;
}

// Runs one handshake over a BIO pair; returns the client's session for resumption.
bssl::UniquePtr<SSL_SESSION> Handshake(const TlsPair& pair, SSL_SESSION* resume) {
  bssl::UniquePtr<SSL> client(SSL_new(pair.client.get()));
  bssl::UniquePtr<SSL> server(SSL_new(pair.server.get()));
  BIO *client_bio, *server_bio;
  if (!client || !server || !BIO_new_bio_pair(&client_bio, 0, &server_bio, 0)) {
    std::abort();
  }
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  if (resume != nullptr) SSL_set_session(client.get(), resume);
  bool client_done = false, server_done = false;
  for (int round = 0; round < 16 && !(client_done && server_done); ++round) {
    if (!client_done) {
      int r = SSL_do_handshake(client.get());
      if (r == 1) {
        client_done = true;
      } else if (SSL_get_error(client.get(), r) != SSL_ERROR_WANT_READ) {
        ERR_print_errors_fp(stderr);
        std::abort();
      }
    }
    if (!server_done) {
      int r = SSL_do_handshake(server.get());
      if (r == 1) {
        server_done = true;
      } else if (SSL_get_error(server.get(), r) != SSL_ERROR_WANT_READ) {
        ERR_print_errors_fp(stderr);
        std::abort();
      }
    }
  }
  if (!client_done || !server_done) std::abort();
  if (resume != nullptr && !SSL_session_reused(client.get())) std::abort();
  // Tickets arrive after the handshake: a byte from the server makes the client read
  // them.
  uint8_t byte;
  if (SSL_write(server.get(), "x", 1) != 1 || SSL_read(client.get(), &byte, 1) != 1) {
    std::abort();
  }
  return std::move(LastTicket());
}

void BM_MtlsHandshakeFullBothSides(benchmark::State& state) {
  const TlsPair* pair = Pair();
  if (pair == nullptr) {
    state.SkipWithError("set TANDEM_BENCH_CERTS");
    return;
  }
  for (auto _ : state) Handshake(*pair, nullptr);
}
BENCHMARK(BM_MtlsHandshakeFullBothSides);

void BM_MtlsHandshakeResumedBothSides(benchmark::State& state) {
  const TlsPair* pair = Pair();
  if (pair == nullptr) {
    state.SkipWithError("set TANDEM_BENCH_CERTS");
    return;
  }
  bssl::UniquePtr<SSL_SESSION> session = Handshake(*pair, nullptr);
  for (auto _ : state) session = Handshake(*pair, session.get());
}
BENCHMARK(BM_MtlsHandshakeResumedBothSides);

}  // namespace

BENCHMARK_MAIN();
