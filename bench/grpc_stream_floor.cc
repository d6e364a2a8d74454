// grpc_stream_floor: the memory floor of an idle policy stream in a bare gRPC server,
// with nothing of tandem in it (issue #17). tandem-ca-load --server-bin drives it as it
// drives tandem-ca (streams phase only), so bench/ca_load.sh prints tandem-ca's KB per
// stream beside this floor's.
//
//   grpc_stream_floor --listen=127.0.0.1:PORT --mode=tls|plaintext|fd   (PORT 0: any; the
//   port it got is printed as tandem's log::Listening line, "listening listener=grpc ...")
//       [--cert=PEM --key=PEM]          (tls: the serving pair)
//
// It serves tandem.policy.v1.MeshPolicyService/StreamPolicy on gRPC's callback API as
// tandem-ca does: each stream gets one response after its first request, then is held
// (its ACKs read) until the client leaves. Modes:
//   tls        gRPC core's TLS credentials (the kind tandem-ca uses: a certificate
//              provider, client certificates requested but not verified by gRPC);
//   plaintext  an insecure listening port;
//   fd         a listening socket of its own, each accepted connection handed to gRPC
//              as plaintext (grpc::AddInsecureChannelFromFd): gRPC's side of a TLS
//              front end outside gRPC that passes plaintext in.
// No BoringSSL is linked: gRPC's TLS is the OpenSSL 3 it carries.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_posix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace {

using tandem::policy::v1::MeshPolicyService;
using tandem::policy::v1::PolicyRequest;
using tandem::policy::v1::PolicyResponse;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "grpc_stream_floor: %s\n", what.c_str());
  std::exit(2);
}

std::string ReadOrDie(const std::string& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One stream: a response after the first request, then its ACKs read until it ends.
// Deletes itself in OnDone. Reactions run one at a time per direction; `mu_` puts the
// end of the stream (Finish, called outside it) after a write in flight.
class FloorStream final : public grpc::ServerBidiReactor<PolicyRequest, PolicyResponse> {
 public:
  explicit FloorStream(const PolicyResponse* response) : response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool finish;
      {
        std::lock_guard<std::mutex> lock(mu_);
        finish = !writing_;
        finish_after_write_ = writing_;
      }
      if (finish) Finish(grpc::Status::OK);
      return;
    }
    if (!sent_) {
      sent_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        writing_ = true;
      }
      StartWrite(response_);
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool) override {
    bool finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      finish = finish_after_write_;
    }
    if (finish) Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  const PolicyResponse* const response_;
  PolicyRequest request_;
  bool sent_ = false;  // read reactions run one at a time
  std::mutex mu_;
  bool writing_ = false;
  bool finish_after_write_ = false;
};

// The service: every stream gets the same response, about the size of tandem-ca's.
class FloorService final : public MeshPolicyService::CallbackService {
 public:
  FloorService() {
    response_.set_version_info("0123456789abcdef");
    response_.set_nonce("1");
    auto* port = response_.mutable_policy()->add_inbound_ports();
    port->set_port(8080);
    port->add_allowed_identities("spiffe://cluster.local/ns/load/*");
  }

  grpc::ServerBidiReactor<PolicyRequest, PolicyResponse>* StreamPolicy(
      grpc::CallbackServerContext*) override {
    return new FloorStream(&response_);
  }

 private:
  PolicyResponse response_;
};

// The port it got, as tandem's log::Listening writes it (text format): the harness
// starts it on port 0 and reads the port back.
void PrintListening(const std::string& host, int port) {
  std::fprintf(stderr, "listening listener=grpc address=%s:%d\n", host.c_str(), port);
  std::fflush(stderr);
}

// Accepts on `address` (IPv4:PORT) and hands each connection to `server`.
[[noreturn]] void AcceptLoop(grpc::Server* server, const std::string& address) {
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  int port = 0;
  sockaddr_in addr{};
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) ||
      inet_pton(AF_INET, parts[0].c_str(), &addr.sin_addr) != 1) {
    Die("--listen must be IPv4:PORT in --mode=fd");
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 4096) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("cannot listen on " + address);
  }
  PrintListening(parts[0], ntohs(addr.sin_port));
  while (true) {
    // Non-blocking, as gRPC's own accepted sockets are.
    int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {  // EMFILE and the like: the client retries
      usleep(10000);
      continue;
    }
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<tandem::Flags> flags =
      tandem::Flags::Parse(argc, argv, 1, {"listen", "mode", "cert", "key"});
  if (!flags.ok()) Die(std::string(flags.status().message()));
  signal(SIGPIPE, SIG_IGN);
  const std::string address = flags->Get("listen");
  const std::string mode = flags->Get("mode", "tls");
  if (address.empty()) Die("--listen=HOST:PORT is required");

  FloorService service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  int bound = 0;
  if (mode == "tls") {
    std::string cert = ReadOrDie(flags->Get("cert"));
    std::string key = ReadOrDie(flags->Get("key"));
    // The serving certificate doubles as the roots named to clients, as tandem-ca's
    // trust bundle does; client certificates are requested, not verified.
    auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        cert, std::vector<grpc::experimental::IdentityKeyCertPair>{{key, cert}});
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_root_certs();
    options.watch_identity_key_cert_pairs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
    builder.AddListeningPort(address, grpc::experimental::TlsServerCredentials(options),
                             &bound);
  } else if (mode == "plaintext") {
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound);
  } else if (mode != "fd") {
    Die("--mode must be tls, plaintext or fd");
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (mode != "fd" && bound == 0)) Die("cannot listen on " + address);
  if (mode == "fd") AcceptLoop(server.get(), address);
  PrintListening(address.substr(0, address.rfind(':')), bound);
  server->Wait();  // until killed: the harness SIGTERMs it
  return 0;
}
