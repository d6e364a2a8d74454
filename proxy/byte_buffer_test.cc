#include "proxy/byte_buffer.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

// Writes as much of `data` as fits, through the writable spans; returns bytes written.
size_t Write(ByteBuffer& buffer, const std::string& data) {
  iovec spans[2];
  int count = buffer.WritableSpans(spans);
  size_t written = 0;
  for (int i = 0; i < count && written < data.size(); ++i) {
    size_t n = std::min(spans[i].iov_len, data.size() - written);
    std::memcpy(spans[i].iov_base, data.data() + written, n);
    written += n;
  }
  buffer.Commit(written);
  return written;
}

// Reads (and consumes) up to `max` bytes through the readable spans.
std::string Read(ByteBuffer& buffer, size_t max) {
  iovec spans[2];
  int count = buffer.ReadableSpans(spans);
  std::string out;
  for (int i = 0; i < count && out.size() < max; ++i) {
    out.append(static_cast<const char*>(spans[i].iov_base),
               std::min(spans[i].iov_len, max - out.size()));
  }
  buffer.Consume(out.size());
  return out;
}

TEST(ByteBufferTest, AllocatesOnFirstWriteAndReleasesOnlyWhenEmpty) {
  ByteBuffer buffer(16);
  EXPECT_FALSE(buffer.allocated());
  EXPECT_EQ(Write(buffer, "abc"), 3u);
  EXPECT_TRUE(buffer.allocated());
  buffer.ReleaseIfEmpty();
  EXPECT_TRUE(buffer.allocated()) << "released while holding bytes";
  EXPECT_EQ(Read(buffer, 16), "abc");
  buffer.ReleaseIfEmpty();
  EXPECT_FALSE(buffer.allocated());
  EXPECT_EQ(Write(buffer, "again"), 5u);
  EXPECT_EQ(Read(buffer, 16), "again");
}

TEST(ByteBufferTest, ReusesStorageGivenBackOnTheSameThread) {
  ByteBuffer first(32), second(32);
  iovec spans[2];
  ASSERT_EQ(first.WritableSpans(spans), 1);
  void* storage = spans[0].iov_base;
  first.ReleaseIfEmpty();
  ASSERT_EQ(second.WritableSpans(spans), 1);
  EXPECT_EQ(spans[0].iov_base, storage);
}

TEST(ByteBufferTest, StopsTakingBytesWhenFullUntilDrained) {
  ByteBuffer buffer(8);
  EXPECT_EQ(Write(buffer, "0123456789"), 8u);  // backpressure: the rest stays out
  EXPECT_TRUE(buffer.full());
  iovec spans[2];
  EXPECT_EQ(buffer.WritableSpans(spans), 0);
  EXPECT_EQ(Read(buffer, 3), "012");
  EXPECT_FALSE(buffer.full());
  EXPECT_EQ(Write(buffer, "89abc"), 3u);
  EXPECT_EQ(Read(buffer, 100), "3456789a");
  EXPECT_TRUE(buffer.empty());
}

TEST(ByteBufferTest, WrapsAroundWithoutMovingBytes) {
  ByteBuffer buffer(8);
  ASSERT_EQ(Write(buffer, "abcdef"), 6u);
  ASSERT_EQ(Read(buffer, 5), "abcde");  // head at 5, one byte buffered
  iovec spans[2];
  ASSERT_EQ(buffer.WritableSpans(spans), 2);
  EXPECT_EQ(spans[0].iov_len, 2u);  // up to the end of the storage
  EXPECT_EQ(spans[1].iov_len, 5u);  // from the start up to the head
  EXPECT_EQ(Write(buffer, "ghijklm"), 7u);
  EXPECT_TRUE(buffer.full());
  ASSERT_EQ(buffer.ReadableSpans(spans), 2);
  EXPECT_EQ(std::string(static_cast<char*>(spans[0].iov_base), spans[0].iov_len), "fgh");
  EXPECT_EQ(std::string(static_cast<char*>(spans[1].iov_base), spans[1].iov_len),
            "ijklm");
  EXPECT_EQ(Read(buffer, 100), "fghijklm");
}

TEST(ByteBufferTest, PartialCommitsAndConsumesKeepTheOrder) {
  ByteBuffer buffer(10);
  std::string sent, received;
  // Writers and readers that take odd amounts, as short reads and partial writes do.
  for (int round = 0; round < 50; ++round) {
    std::string chunk(1 + round % 7, static_cast<char>('a' + round % 26));
    size_t n = Write(buffer, chunk);
    sent.append(chunk, 0, n);
    received += Read(buffer, 1 + round % 4);
  }
  received += Read(buffer, 100);
  EXPECT_EQ(received, sent);
}

TEST(ByteBufferTest, PeekGathersAcrossTheWrapWithoutConsuming) {
  ByteBuffer buffer(8);
  ASSERT_EQ(Write(buffer, "xxxxxx"), 6u);
  ASSERT_EQ(Read(buffer, 6), "xxxxxx");  // empty again: starts over at offset 0
  ASSERT_EQ(Write(buffer, "abcde"), 5u);
  ASSERT_EQ(Read(buffer, 4), "abcd");
  ASSERT_EQ(Write(buffer, "fghij"), 5u);  // "e" at 4, "fgh" to the end, "ij" wrapped
  char out[8];
  ASSERT_EQ(buffer.Peek(out, 4), 4u);
  EXPECT_EQ(std::string(out, 4), "efgh");
  ASSERT_EQ(buffer.Peek(out, sizeof(out)), 6u);
  EXPECT_EQ(std::string(out, 6), "efghij");
  EXPECT_EQ(buffer.size(), 6u);
}

TEST(ByteBufferTest, EmptyBufferOffersItsWholeCapacityInOneSpan) {
  ByteBuffer buffer(8);
  ASSERT_EQ(Write(buffer, "abcde"), 5u);
  ASSERT_EQ(Read(buffer, 5), "abcde");
  iovec spans[2];
  ASSERT_EQ(buffer.WritableSpans(spans), 1);
  EXPECT_EQ(spans[0].iov_len, 8u);
}

}  // namespace
}  // namespace tandem::proxy
