// gRPC code: no <openssl/...> here.
#include "agent/ca_channel.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/fake_policy_service.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/test_grpc_server.h"
#include "tests/support/test_ca.h"

namespace tandem::agent {
namespace {

// A TLS server with a certificate from `ca`, on a port of 127.0.0.1.
std::unique_ptr<testing::TestGrpcServer<testing::FakePolicyService>> ServeWith(
    const TestCa& ca) {
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({ca.server_key_pem(), ca.server_chain_pem()});
  return *testing::TestGrpcServer<testing::FakePolicyService>::Start(
      "127.0.0.1:0", grpc::SslServerCredentials(ssl));
}

bool Connects(const std::shared_ptr<grpc::Channel>& channel) {
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(2));
}

void WriteAtomically(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

class CaChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.address = absl::StrCat("127.0.0.1:", server_->port());
    options_.server_name = "tandem-ca";
    options_.root_file = dir_.path() + "/ca-root.pem";
    options_.extra_roots_file = dir_.path() + "/extra-roots.pem";
    WriteAtomically(options_.root_file, old_->root_pem());
    WriteAtomically(options_.extra_roots_file, "");
    options_.root_pem = old_->root_pem();
  }

  testing::TempDir dir_{"tandem-ca-channel-test"};
  std::unique_ptr<TestCa> old_ = *TestCa::Create("cluster.local");
  std::unique_ptr<TestCa> next_ = *TestCa::Create("cluster.local");
  // The CA after it switched to the next root.
  std::unique_ptr<testing::TestGrpcServer<testing::FakePolicyService>> server_ =
      ServeWith(*next_);
  CaClientOptions options_;
};

TEST_F(CaChannelTest, ReachesACaOnTheNextRootOnceTheExtraRootsFileHasIt) {
  CaChannel channel(options_);
  std::shared_ptr<grpc::Channel> first = channel.Get();
  EXPECT_FALSE(Connects(first)) << "the old root alone must not verify the CA";
  EXPECT_EQ(channel.Get(), first) << "unchanged roots keep the channel";

  WriteAtomically(options_.extra_roots_file, next_->root_pem());
  std::shared_ptr<grpc::Channel> rotated = channel.Get();
  EXPECT_NE(rotated, first);
  EXPECT_TRUE(Connects(rotated));
}

TEST_F(CaChannelTest, FollowsTheRootFileAndKeepsTheLastRootsWhenItIsUnreadable) {
  CaChannel channel(options_);
  EXPECT_FALSE(Connects(channel.Get()));
  // The tandem-ca-root ConfigMap now holds only the next root.
  WriteAtomically(options_.root_file, next_->root_pem());
  std::shared_ptr<grpc::Channel> rotated = channel.Get();
  EXPECT_TRUE(Connects(rotated));
  std::filesystem::remove(options_.root_file);
  EXPECT_EQ(channel.Get(), rotated);
  WriteAtomically(options_.root_file, "");  // an empty file is not "trust nothing"
  EXPECT_EQ(channel.Get(), rotated);
}

}  // namespace
}  // namespace tandem::agent
