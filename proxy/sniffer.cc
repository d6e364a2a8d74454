#include "proxy/sniffer.h"

#include <cstdint>

namespace tandem::proxy {
namespace {

// TLS record: content type 22 (handshake).
constexpr uint8_t kTlsHandshakeRecord = 0x16;

}  // namespace

InboundProtocol SniffInboundProtocol(absl::string_view first_bytes) {
  if (first_bytes.empty()) return InboundProtocol::kNeedMoreBytes;
  return static_cast<uint8_t>(first_bytes[0]) == kTlsHandshakeRecord
             ? InboundProtocol::kTls
             : InboundProtocol::kPlaintext;
}

}  // namespace tandem::proxy
