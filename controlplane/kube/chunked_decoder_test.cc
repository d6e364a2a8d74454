#include "controlplane/kube/chunked_decoder.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

TEST(ChunkedDecoderTest, DecodesByteByByteWithExtensionsAndTrailers) {
  const std::string wire =
      "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\nafter";
  ChunkedDecoder decoder;
  std::string body;
  for (char c : wire) {
    ASSERT_TRUE(decoder.Feed(std::string(1, c), &body).ok());
  }
  EXPECT_EQ(body, "hello world");
  EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoderTest, IsNotDoneInsideABody) {
  ChunkedDecoder decoder;
  std::string body;
  ASSERT_TRUE(decoder.Feed("3\r\nab", &body).ok());
  EXPECT_EQ(body, "ab");
  EXPECT_FALSE(decoder.done());
}

TEST(ChunkedDecoderTest, RefusesASizeThatIsNotHex) {
  ChunkedDecoder decoder;
  std::string body;
  absl::Status s = decoder.Feed("zz\r\n", &body);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "chunked body: a chunk size that is not hexadecimal");
  EXPECT_EQ(decoder.Feed("1\r\na\r\n", &body).message(), "chunked body: already failed");
}

TEST(ChunkedDecoderTest, RefusesAChunkNotFollowedByCrlf) {
  ChunkedDecoder decoder;
  std::string body;
  EXPECT_EQ(decoder.Feed("1\r\nab\r\n", &body).message(),
            "chunked body: a chunk is not followed by CRLF");
}

TEST(ChunkedDecoderTest, RefusesAChunkOverTheLimit) {
  ChunkedDecoder decoder(16);
  std::string body;
  EXPECT_EQ(decoder.Feed("11\r\n", &body).message(),
            "chunked body: a chunk of 17 bytes (limit 16)");
}

TEST(ChunkedDecoderTest, RefusesALongSizeLineAndABareLf) {
  ChunkedDecoder decoder;
  std::string body;
  EXPECT_EQ(decoder.Feed(std::string(2000, '1'), &body).message(),
            "chunked body: a size or trailer line over 1 KiB");
  ChunkedDecoder bare;
  EXPECT_EQ(bare.Feed("1\n", &body).message(), "chunked body: a line not ended by CRLF");
}

}  // namespace
}  // namespace tandem::controlplane
