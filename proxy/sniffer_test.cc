#include "proxy/sniffer.h"

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

TEST(SnifferTest, TellsATlsHandshakeRecordFromPlaintext) {
  EXPECT_EQ(SniffInboundProtocol(absl::string_view("\x16\x03\x01\x02\x00", 5)),
            InboundProtocol::kTls);
  EXPECT_EQ(SniffInboundProtocol("GET / HTTP/1.1\r\n"), InboundProtocol::kPlaintext);
  // An SSLv2-style hello is not a TLS record: plaintext, refused on STRICT ports.
  EXPECT_EQ(SniffInboundProtocol(absl::string_view("\x80\x46\x01", 3)),
            InboundProtocol::kPlaintext);
}

TEST(SnifferTest, WaitsForAFirstByte) {
  EXPECT_EQ(SniffInboundProtocol(""), InboundProtocol::kNeedMoreBytes);
}

}  // namespace
}  // namespace tandem::proxy
