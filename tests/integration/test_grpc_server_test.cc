// TestGrpcServer: it says which address it could not serve on. gRPC code: no
// <openssl/...> here.
#include "tests/integration/test_grpc_server.h"

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "tests/integration/fake_policy_service.h"
#include "tests/integration/temp_dir.h"

namespace tandem::testing {
namespace {

TEST(TestGrpcServerTest, StartNamesAnAddressItCannotServeOn) {
  TempDir temp("tandem-test-grpc-server-test");
  const std::string address = "unix:" + temp.path() + "/missing/dir/policy.sock";
  absl::StatusOr<std::unique_ptr<TestGrpcServer<FakePolicyService>>> server =
      TestGrpcServer<FakePolicyService>::Start(address,
                                               grpc::InsecureServerCredentials());
  ASSERT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(server.status().message().find(address), std::string::npos);
}

TEST(TestGrpcServerTest, ServesOnAUnixSocketAndReportsAPickedTcpPort) {
  TempDir temp("tandem-test-grpc-server-test");
  absl::StatusOr<std::unique_ptr<TestGrpcServer<FakePolicyService>>> on_socket =
      TestGrpcServer<FakePolicyService>::Start("unix:" + temp.path() + "/policy.sock",
                                               grpc::InsecureServerCredentials());
  ASSERT_TRUE(on_socket.ok()) << on_socket.status();
  EXPECT_NE((*on_socket)->service(), nullptr);
  absl::StatusOr<std::unique_ptr<TestGrpcServer<FakePolicyService>>> on_tcp =
      TestGrpcServer<FakePolicyService>::Start("127.0.0.1:0",
                                               grpc::InsecureServerCredentials());
  ASSERT_TRUE(on_tcp.ok()) << on_tcp.status();
  EXPECT_GT((*on_tcp)->port(), 0);
}

}  // namespace
}  // namespace tandem::testing
