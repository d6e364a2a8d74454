// The CPU floor of moving bulk data through a TLS proxy on this machine, with the
// BoringSSL tandem links: AES-128-GCM sealing and opening of full 16 KiB TLS records
// (TLS_AES_128_GCM_SHA256, what the bench negotiates), a user-space copy, and a null
// system call. bench/run.sh sets these beside the proxies' measured CPU per GB.
//   build/bench/data_path_floor_benchmark
// Single-threaded; no sockets.
#include <openssl/aead.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr size_t kRecord = 16384;  // TLS's largest plaintext record

struct Aead {
  bssl::ScopedEVP_AEAD_CTX ctx;
  uint8_t nonce[12] = {};
  Aead() {
    const uint8_t key[16] = {1, 2, 3};
    if (!EVP_AEAD_CTX_init(ctx.get(), EVP_aead_aes_128_gcm(), key, sizeof(key),
                           EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr)) {
      std::abort();
    }
  }
};

void BM_Aes128GcmSealRecord(benchmark::State& state) {
  Aead aead;
  std::vector<uint8_t> in(kRecord, 'a'), out(kRecord + 16);
  for (auto _ : state) {
    size_t out_len = 0;
    if (!EVP_AEAD_CTX_seal(aead.ctx.get(), out.data(), &out_len, out.size(), aead.nonce,
                           sizeof(aead.nonce), in.data(), in.size(), nullptr, 0)) {
      std::abort();
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Aes128GcmSealRecord);

void BM_Aes128GcmOpenRecord(benchmark::State& state) {
  Aead aead;
  std::vector<uint8_t> plain(kRecord, 'a'), sealed(kRecord + 16), out(kRecord);
  size_t sealed_len = 0;
  if (!EVP_AEAD_CTX_seal(aead.ctx.get(), sealed.data(), &sealed_len, sealed.size(),
                         aead.nonce, sizeof(aead.nonce), plain.data(), plain.size(),
                         nullptr, 0)) {
    std::abort();
  }
  for (auto _ : state) {
    size_t out_len = 0;
    if (!EVP_AEAD_CTX_open(aead.ctx.get(), out.data(), &out_len, out.size(), aead.nonce,
                           sizeof(aead.nonce), sealed.data(), sealed_len, nullptr, 0)) {
      std::abort();
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRecord);
}
BENCHMARK(BM_Aes128GcmOpenRecord);

// One copy of a 64 KiB buffer (the proxy's buffer size), warm in cache.
void BM_Memcpy64KiB(benchmark::State& state) {
  constexpr size_t kSize = 64 * 1024;
  std::vector<char> from(kSize, 'a'), to(kSize);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), kSize);
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}
BENCHMARK(BM_Memcpy64KiB);

// The entry and exit cost every system call pays (a VM's can be far above bare metal).
void BM_NullSyscall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(syscall(SYS_getppid));
}
BENCHMARK(BM_NullSyscall);

}  // namespace

BENCHMARK_MAIN();
