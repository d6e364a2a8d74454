#include "proxy/socket_bio.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

class ReadAheadSocketBioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
    bio_.reset(NewReadAheadSocketBio(fds_[0]));
    ASSERT_NE(bio_, nullptr);
  }
  void TearDown() override {
    bio_.reset();
    close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  void PeerWrites(const std::string& data) {
    ASSERT_EQ(write(fds_[1], data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
  }
  std::string BioRead(int len) {
    std::string out(len, '\0');
    int n = BIO_read(bio_.get(), out.data(), len);
    return n > 0 ? out.substr(0, n) : "";
  }

  int fds_[2] = {-1, -1};
  bssl::UniquePtr<BIO> bio_;
};

TEST_F(ReadAheadSocketBioTest, ServesHeaderAndBodyReadsFromOneSocketRead) {
  PeerWrites(
      "HDR01body-one"
      "HDR02body-two");
  EXPECT_EQ(BioRead(5), "HDR01");
  // Everything the socket had came in with the first read.
  EXPECT_EQ(ReadAheadBuffered(bio_.get()), 21u);
  PeerWrites("-late");
  EXPECT_EQ(BioRead(8), "body-one");
  EXPECT_EQ(BioRead(100), "HDR02body-two");  // no more than was read ahead
  EXPECT_EQ(ReadAheadBuffered(bio_.get()), 0u);
  MarkReadable(bio_.get());
  EXPECT_EQ(BioRead(100), "-late");
}

TEST_F(ReadAheadSocketBioTest, ReadsAheadAsMuchAsItsSizesSay) {
  std::string data(100000, 'd');
  PeerWrites(data);
  EXPECT_EQ(BioRead(5), "ddddd");
  EXPECT_EQ(ReadAheadBuffered(bio_.get()), kSocketReadAhead - 5);  // the default
  ASSERT_EQ(BioRead(100000).size(), kSocketReadAhead - 5);
  SetSocketBioSizes(bio_.get(), /*read_ahead=*/200000, /*write_coalesce=*/200000);
  EXPECT_EQ(BioRead(5), "ddddd");
  EXPECT_EQ(ReadAheadBuffered(bio_.get()), data.size() - kSocketReadAhead - 5);
  // Corked writes now gather up to 200000 bytes before they must go.
  CorkWrites(bio_.get());
  EXPECT_EQ(BIO_write(bio_.get(), data.data(), static_cast<int>(data.size())), 100000);
  EXPECT_EQ(PendingWrites(bio_.get()), data.size());
  EXPECT_EQ(FlushWrites(bio_.get()), 1);
}

TEST_F(ReadAheadSocketBioTest, AsksToRetryWhenTheSocketIsEmpty) {
  char byte;
  EXPECT_EQ(BIO_read(bio_.get(), &byte, 1), -1);
  EXPECT_TRUE(BIO_should_retry(bio_.get()));
  EXPECT_TRUE(BIO_should_read(bio_.get()));
  PeerWrites("x");
  MarkReadable(bio_.get());
  EXPECT_EQ(BioRead(1), "x");
  EXPECT_FALSE(BIO_should_retry(bio_.get()));
}

TEST_F(ReadAheadSocketBioTest, AfterAShortReadWaitsForReadableInsteadOfAskingAgain) {
  PeerWrites("short");
  EXPECT_EQ(BioRead(100), "short");
  PeerWrites("more");
  // The short read emptied the socket: no read() until the loop says readable, even
  // though bytes have arrived since.
  char byte;
  EXPECT_EQ(BIO_read(bio_.get(), &byte, 1), -1);
  EXPECT_TRUE(BIO_should_read(bio_.get()));
  MarkReadable(bio_.get());
  EXPECT_EQ(BioRead(100), "more");
}

TEST_F(ReadAheadSocketBioTest, ReportsEndOfStreamAfterTheBufferedBytes) {
  PeerWrites("last");
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(BioRead(2), "la");
  EXPECT_EQ(BioRead(10), "st");
  MarkReadable(bio_.get());  // the loop reports EOF as readable
  char byte;
  EXPECT_EQ(BIO_read(bio_.get(), &byte, 1), 0);
  EXPECT_FALSE(BIO_should_retry(bio_.get()));
}

TEST_F(ReadAheadSocketBioTest, WritesGoStraightToTheSocketAndFlushSucceeds) {
  EXPECT_EQ(BIO_write(bio_.get(), "record", 6), 6);
  EXPECT_EQ(BIO_flush(bio_.get()), 1);
  char out[16];
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), 6);
  EXPECT_EQ(std::string(out, 6), "record");
}

TEST_F(ReadAheadSocketBioTest, AClientsBioWaitsForReadableBeforeItsFirstRead) {
  bssl::UniquePtr<BIO> client(NewReadAheadSocketBio(fds_[0], /*wait_for_readable=*/true));
  PeerWrites("hello");
  char byte;
  EXPECT_EQ(BIO_read(client.get(), &byte, 1), -1);
  EXPECT_TRUE(BIO_should_read(client.get()));
  MarkReadable(client.get());
  EXPECT_EQ(BIO_read(client.get(), &byte, 1), 1);
}

TEST_F(ReadAheadSocketBioTest, CorkedWritesLeaveInOneSend) {
  CorkWrites(bio_.get());
  EXPECT_EQ(BIO_write(bio_.get(), "rec1", 4), 4);
  EXPECT_EQ(BIO_write(bio_.get(), "rec2", 4), 4);
  EXPECT_EQ(PendingWrites(bio_.get()), 8u);
  EXPECT_EQ(BIO_wpending(bio_.get()), 8u);
  char out[16];
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), -1);  // nothing sent yet
  EXPECT_EQ(FlushWrites(bio_.get()), 1);
  EXPECT_EQ(PendingWrites(bio_.get()), 0u);
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), 8);
  EXPECT_EQ(std::string(out, 8), "rec1rec2");
  // Uncorked again: straight through.
  EXPECT_EQ(BIO_write(bio_.get(), "now", 3), 3);
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), 3);
}

TEST_F(ReadAheadSocketBioTest, AnAlignedFlushKeepsThePartialSegmentGathered) {
  CorkWrites(bio_.get());
  EXPECT_EQ(BIO_write(bio_.get(), "0123456789", 10), 10);
  EXPECT_EQ(FlushWrites(bio_.get(), /*align=*/4), 1);  // 8 bytes: two whole "segments"
  EXPECT_EQ(PendingWrites(bio_.get()), 2u);
  char out[16];
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), 8);
  EXPECT_EQ(std::string(out, 8), "01234567");
  // The kept tail goes first, before what is gathered next.
  CorkWrites(bio_.get());
  EXPECT_EQ(BIO_write(bio_.get(), "ab", 2), 2);
  EXPECT_EQ(FlushWrites(bio_.get(), /*align=*/64), 1);  // less than one: all kept
  EXPECT_EQ(PendingWrites(bio_.get()), 4u);
  EXPECT_EQ(FlushWrites(bio_.get()), 1);
  EXPECT_EQ(PendingWrites(bio_.get()), 0u);
  EXPECT_EQ(read(fds_[1], out, sizeof(out)), 4);
  EXPECT_EQ(std::string(out, 4), "89ab");
}

TEST_F(ReadAheadSocketBioTest, GatheredBytesStayFirstWhenTheSocketIsFull) {
  // Fill the socket, then gather more than one send can take.
  std::string fill(64 * 1024, 'f');
  for (int i = 0; i < 1000 && BIO_write(bio_.get(), fill.data(), 65536) > 0; ++i) {
  }
  CorkWrites(bio_.get());
  EXPECT_EQ(BIO_write(bio_.get(), "first", 5), 5);
  EXPECT_EQ(FlushWrites(bio_.get()), 0);  // full: kept, in order
  EXPECT_EQ(PendingWrites(bio_.get()), 5u);
  // An uncorked write may not overtake them: it asks to retry.
  EXPECT_EQ(BIO_write(bio_.get(), "second", 6), -1);
  EXPECT_TRUE(BIO_should_write(bio_.get()));
  EXPECT_EQ(BIO_flush(bio_.get()), -1);
  EXPECT_TRUE(BIO_should_write(bio_.get()));
  // Drain the peer while retrying: the uncorked write sends the gathered bytes first.
  std::string got;
  char chunk[65536];
  bool second_sent = false;
  for (int i = 0; i < 10000; ++i) {  // bounded
    ssize_t n = read(fds_[1], chunk, sizeof(chunk));
    if (n > 0) got.append(chunk, n);
    if (!second_sent) second_sent = BIO_write(bio_.get(), "second", 6) == 6;
    if (second_sent && n <= 0) break;
  }
  EXPECT_TRUE(second_sent);
  EXPECT_EQ(PendingWrites(bio_.get()), 0u);
  ASSERT_GE(got.size(), 11u);
  EXPECT_EQ(got.substr(got.size() - 11), "firstsecond");
}

TEST_F(ReadAheadSocketBioTest, AsksToRetryWritesWhenTheSocketIsFull) {
  std::string chunk(64 * 1024, 'w');
  int last = 1;
  for (int i = 0; i < 1000 && last > 0; ++i) {  // bounded: a socket buffer is < 64 MiB
    last = BIO_write(bio_.get(), chunk.data(), static_cast<int>(chunk.size()));
  }
  EXPECT_EQ(last, -1);
  EXPECT_TRUE(BIO_should_retry(bio_.get()));
  EXPECT_TRUE(BIO_should_write(bio_.get()));
}

}  // namespace
}  // namespace tandem::proxy
