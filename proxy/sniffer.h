#ifndef TANDEM_PROXY_SNIFFER_H_
#define TANDEM_PROXY_SNIFFER_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace tandem::proxy {

// What an inbound peer speaks, judged from the first bytes it sent.
enum class InboundProtocol { kNeedMoreBytes, kTls, kPlaintext };

// How many leading bytes SniffInboundProtocol looks at: the most a connection peeks.
inline constexpr size_t kSniffBytes = 1;

// Classifies an inbound connection from the bytes peeked (not consumed) off its socket:
// a TLS handshake record (content type 22) is TLS, anything else plaintext. Looks at no
// more than kSniffBytes bytes; an empty input needs more bytes. Pure: any thread.
InboundProtocol SniffInboundProtocol(absl::string_view first_bytes);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SNIFFER_H_
