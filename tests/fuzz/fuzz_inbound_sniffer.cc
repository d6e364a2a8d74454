// Fuzzes the inbound TLS-vs-plaintext sniffer with whatever a peer sends first: the
// verdict must depend on the first kSniffBytes bytes only (a connection never peeks
// more), and any non-empty peek must decide.
#include <cstdint>
#include <cstdlib>

#include "proxy/sniffer.h"

using tandem::proxy::InboundProtocol;
using tandem::proxy::kSniffBytes;
using tandem::proxy::SniffInboundProtocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  InboundProtocol verdict = SniffInboundProtocol(bytes);
  if (size == 0) {
    if (verdict != InboundProtocol::kNeedMoreBytes) std::abort();
    return 0;
  }
  if (verdict == InboundProtocol::kNeedMoreBytes && size >= kSniffBytes) std::abort();
  if (size >= kSniffBytes &&
      SniffInboundProtocol(bytes.substr(0, kSniffBytes)) != verdict) {
    std::abort();
  }
  return 0;
}
