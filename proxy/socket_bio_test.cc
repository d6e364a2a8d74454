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
  EXPECT_EQ(BioRead(100), "-late");
}

TEST_F(ReadAheadSocketBioTest, AsksToRetryWhenTheSocketIsEmpty) {
  char byte;
  EXPECT_EQ(BIO_read(bio_.get(), &byte, 1), -1);
  EXPECT_TRUE(BIO_should_retry(bio_.get()));
  EXPECT_TRUE(BIO_should_read(bio_.get()));
  PeerWrites("x");
  EXPECT_EQ(BioRead(1), "x");
  EXPECT_FALSE(BIO_should_retry(bio_.get()));
}

TEST_F(ReadAheadSocketBioTest, ReportsEndOfStreamAfterTheBufferedBytes) {
  PeerWrites("last");
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(BioRead(2), "la");
  EXPECT_EQ(BioRead(10), "st");
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
