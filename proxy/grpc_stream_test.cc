// GrpcStream, the proxy's own gRPC client: against a real gRPC server (Debian's
// grpc++) for the protocol, and against peers that are not one for its refusals. The
// SDS and policy client tests run it against scripted services too.
#include "proxy/grpc_stream.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tandem/mesh_policy.grpc.pb.h"
#include "tests/integration/temp_dir.h"

namespace tandem::proxy {
namespace {

using namespace std::string_literals;

constexpr char kMethod[] = "/tandem.policy.v1.MeshPolicyService/StreamPolicy";

std::string Frame(const std::string& body, char compressed = 0) {
  size_t n = body.size();
  std::string out = {compressed, static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out + body;
}

TEST(GrpcStreamDeframeTest, CutsWholeMessagesAndKeepsAPartialOne) {
  std::string wire = Frame("one") + Frame("") + Frame("three");
  std::string buffer = wire.substr(0, wire.size() - 2);
  std::deque<std::string> out;
  ASSERT_TRUE(GrpcStream::Deframe(buffer, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "one");
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(buffer, Frame("three").substr(0, 8));  // waits for the rest
  buffer += wire.substr(wire.size() - 2);
  ASSERT_TRUE(GrpcStream::Deframe(buffer, out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2], "three");
  EXPECT_TRUE(buffer.empty());
}

TEST(GrpcStreamDeframeTest, RefusesCompressedAndOversizedMessages) {
  std::deque<std::string> out;
  std::string compressed = Frame("x", 1);
  absl::Status s = GrpcStream::Deframe(compressed, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("compressed"), std::string::npos) << s;
  // Only the prefix has come: the length alone is enough to refuse.
  std::string huge = "\0\x01\0\0\x01"s;
  s = GrpcStream::Deframe(huge, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("limit"), std::string::npos) << s;
  EXPECT_TRUE(out.empty());
}

// A policy service that answers each request with a response naming its node, and
// ends the stream with an error once asked to by a node called "fail".
class EchoPolicyService final : public policy::v1::MeshPolicyService::Service {
 public:
  grpc::Status StreamPolicy(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<policy::v1::PolicyResponse, policy::v1::PolicyRequest>*
          stream) override {
    policy::v1::PolicyRequest request;
    while (stream->Read(&request)) {
      if (request.node() == "fail") {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not you");
      }
      policy::v1::PolicyResponse response;
      response.set_version_info("for-" + request.node());
      // Large enough to take several HTTP/2 DATA frames.
      response.set_nonce(std::string(100000, 'n'));
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }
};

class GrpcStreamTest : public ::testing::Test {
 protected:
  void StartGrpcServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + path_, grpc::InsecureServerCredentials());
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  // A Unix socket whose peer is not a gRPC server: it accepts, then `behave`s.
  template <typename Behave>
  std::thread ServeRaw(Behave behave) {
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path_.data(), path_.size());
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    return std::thread([this, behave] {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      behave(fd);
      close(fd);
    });
  }

  testing::TempDir dir_{"grpc-stream"};
  std::string path_ = dir_.path() + "/agent.sock";
  EchoPolicyService service_;
  std::unique_ptr<grpc::Server> server_;
  int listen_fd_ = -1;
};

TEST_F(GrpcStreamTest, SpeaksToARealGrpcServerBothWays) {
  StartGrpcServer();
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(path_, kMethod);
  ASSERT_TRUE(stream.ok()) << stream.status();
  for (const char* node : {"a", "b", "c"}) {
    policy::v1::PolicyRequest request;
    request.set_node(node);
    ASSERT_TRUE((*stream)->Write(request)) << (*stream)->Finish();
    policy::v1::PolicyResponse response;
    ASSERT_TRUE((*stream)->Read(&response)) << (*stream)->Finish();
    EXPECT_EQ(response.version_info(), std::string("for-") + node);
    EXPECT_EQ(response.nonce().size(), 100000u);
  }
  EXPECT_TRUE((*stream)->Finish().ok());
}

TEST_F(GrpcStreamTest, ReportsTheServersErrorStatus) {
  StartGrpcServer();
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(path_, kMethod);
  ASSERT_TRUE(stream.ok()) << stream.status();
  policy::v1::PolicyRequest request;
  request.set_node("fail");
  (*stream)->Write(request);
  policy::v1::PolicyResponse response;
  EXPECT_FALSE((*stream)->Read(&response));
  EXPECT_EQ((*stream)->Finish().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE((*stream)->Finish().message().find("not you"), std::string::npos)
      << (*stream)->Finish();
}

TEST_F(GrpcStreamTest, ReportsAnUnknownMethod) {
  StartGrpcServer();
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream =
      GrpcStream::Open(path_, "/no.such.Service/Method");
  ASSERT_TRUE(stream.ok()) << stream.status();
  policy::v1::PolicyResponse response;
  EXPECT_FALSE((*stream)->Read(&response));
  EXPECT_EQ((*stream)->Finish().code(), absl::StatusCode::kUnimplemented)
      << (*stream)->Finish();
}

TEST_F(GrpcStreamTest, RefusesAMissingSocketByName) {
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(path_, kMethod);
  ASSERT_FALSE(stream.ok());
  EXPECT_NE(stream.status().message().find(path_), std::string::npos) << stream.status();
}

TEST_F(GrpcStreamTest, RefusesAPeerThatDoesNotSpeakHttp2) {
  std::thread peer = ServeRaw([](int fd) {
    const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    (void)!write(fd, reply, sizeof(reply) - 1);
    absl::SleepFor(absl::Milliseconds(200));
  });
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(path_, kMethod);
  ASSERT_TRUE(stream.ok()) << stream.status();
  policy::v1::PolicyResponse response;
  EXPECT_FALSE((*stream)->Read(&response));
  EXPECT_EQ((*stream)->Finish().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE((*stream)->Finish().message().find("HTTP/2"), std::string::npos)
      << (*stream)->Finish();
  peer.join();
}

TEST_F(GrpcStreamTest, CancelEndsABlockedReadFromAnotherThread) {
  std::atomic<bool> done{false};
  std::thread peer = ServeRaw([&done](int) {
    for (int i = 0; i < 500 && !done.load(); ++i) absl::SleepFor(absl::Milliseconds(10));
  });
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(path_, kMethod);
  ASSERT_TRUE(stream.ok()) << stream.status();
  GrpcStream* s = stream->get();
  std::thread canceller([s] {
    absl::SleepFor(absl::Milliseconds(100));
    s->Cancel();
  });
  policy::v1::PolicyResponse response;
  EXPECT_FALSE(s->Read(&response));  // the silent peer would block it for 5 s
  EXPECT_EQ(s->Finish().code(), absl::StatusCode::kCancelled);
  canceller.join();
  done.store(true);
  peer.join();
}

}  // namespace
}  // namespace tandem::proxy
