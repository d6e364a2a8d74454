// Fuzzes SPIFFE ID parsing: any accepted ID must round-trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/spiffe_id.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tandem::SpiffeId> id = tandem::SpiffeId::Parse(input);
  if (id.ok()) {
    if (id->ToString() != input) std::abort();
    absl::StatusOr<tandem::SpiffeId> again = tandem::SpiffeId::Parse(id->ToString());
    if (!again.ok() || !(*again == *id)) std::abort();
    id->KubernetesNamespace();
    id->KubernetesServiceAccount();
  }
  return 0;
}
