// Fuzzes kube-inject's YAML path: any stream is injected or refused with
// kInvalidArgument, and what it prints reads back and injects to itself (idempotence).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "controlplane/injection/kube_inject.h"
#include "tests/fuzz/injection_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;  // kube-inject reads files people write
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto& injector = tandem::injection::FuzzInjector();
  absl::StatusOr<std::string> out =
      tandem::injection::KubeInject(text, "fuzz.yaml", "default", injector);
  if (!out.ok()) {
    if (out.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  // Aliases make the output far larger than the input (they are written out expanded);
  // re-reading megabytes under ASan would only test the fuzzer's patience.
  if (out->size() > 256 * 1024) return 0;
  absl::StatusOr<std::string> again =
      tandem::injection::KubeInject(*out, "out.yaml", "default", injector);
  if (!again.ok() || *again != *out) std::abort();
  return 0;
}
