// gRPC code: never include <openssl/...> here.
#include "agent/sds_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "envoy/sds_service.grpc.pb.h"
#include "envoy/secret.pb.h"

namespace tandem::agent {

namespace discovery = ::envoy::service::discovery::v3;
namespace tls = ::envoy::extensions::transport_sockets::tls::v3;

namespace {

constexpr char kSecretType[] =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

}  // namespace

struct SdsServer::Impl final
    : public ::envoy::service::secret::v3::SecretDiscoveryService::Service {
  SdsServerOptions options;
  int listen_fd = -1;
  std::unique_ptr<grpc::Server> server;
  std::thread acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> pushes{0}, acks{0}, nacks{0}, refused_peers{0};
  std::atomic<int> streams{0};

  mutable absl::Mutex mu;
  WorkloadSecretPem secret ABSL_GUARDED_BY(mu);
  uint64_t version ABSL_GUARDED_BY(mu) = 0;

  void AcceptLoop();

  // What a stream writer waits for: a new version, shutdown, or its peer going away.
  struct WaitArgs {
    Impl* impl;
    uint64_t sent;
    std::atomic<bool>* reader_done;
    static bool Changed(WaitArgs* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return a->impl->version != a->sent || a->impl->stopping.load() ||
             a->reader_done->load();
    }
  };

  grpc::Status StreamSecrets(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<discovery::DiscoveryResponse, discovery::DiscoveryRequest>*
          stream) override {
    discovery::DiscoveryRequest first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    streams.fetch_add(1);
    std::atomic<bool> reader_done{false};
    // ACKs and NACKs arrive while we wait to push; one reader, one writer is the
    // concurrency gRPC's sync API allows.
    std::thread reader([&] {
      discovery::DiscoveryRequest r;
      while (stream->Read(&r)) {
        if (r.has_error_detail()) {
          nacks.fetch_add(1);
          std::fprintf(stderr, "tandem-agent: proxy NACKed secret version %s: %s\n",
                       r.response_nonce().c_str(), r.error_detail().message().c_str());
        } else {
          acks.fetch_add(1);
        }
      }
      reader_done.store(true);
      absl::MutexLock lock(&mu);  // wake the writer
    });
    uint64_t sent = 0;
    while (!stopping.load() && !reader_done.load() && !context->IsCancelled()) {
      WorkloadSecretPem current;
      uint64_t v;
      {
        absl::MutexLock lock(&mu);
        WaitArgs args{this, sent, &reader_done};
        mu.AwaitWithTimeout(absl::Condition(&WaitArgs::Changed, &args),
                            absl::Milliseconds(500));
        if (version == sent) continue;
        current = secret;
        v = version;
      }
      discovery::DiscoveryResponse response;
      response.set_version_info(absl::StrCat(v));
      response.set_nonce(absl::StrCat(v));
      response.set_type_url(kSecretType);
      tls::Secret cert;
      cert.set_name("default");
      cert.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_bytes(
          current.cert_chain);
      cert.mutable_tls_certificate()->mutable_private_key()->set_inline_bytes(
          current.private_key);
      tls::Secret root;
      root.set_name("ROOTCA");
      root.mutable_validation_context()->mutable_trusted_ca()->set_inline_bytes(
          current.trust_bundle);
      response.add_resources()->PackFrom(cert);
      response.add_resources()->PackFrom(root);
      if (!stream->Write(response)) break;
      pushes.fetch_add(1);
      sent = v;
    }
    context->TryCancel();
    reader.join();
    streams.fetch_sub(1);
    return grpc::Status::OK;
  }
};

absl::StatusOr<std::unique_ptr<SdsServer>> SdsServer::Create(SdsServerOptions options) {
  sockaddr_un addr{};
  if (options.socket_path.empty() || options.socket_path[0] != '/' ||
      options.socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("SDS socket path must be absolute and short");
  }
  std::string dir = options.socket_path.substr(0, options.socket_path.rfind('/'));
  struct stat st;
  if (!dir.empty() && stat(dir.c_str(), &st) != 0) {
    if (mkdir(dir.c_str(), 0700) != 0) {
      return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
    }
  } else if (!dir.empty() && (st.st_mode & 077) != 0 && st.st_uid == geteuid()) {
    // Our own directory: make it owner-only rather than trust a loose mode.
    chmod(dir.c_str(), 0700);
  }
  unlink(options.socket_path.c_str());  // a stale socket from a previous run
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size());
  // Created owner-only from the first instant, not chmod'ed after the fact.
  mode_t old = umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0 || listen(fd, 16) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.socket_path, ": ", std::strerror(err)));
  }
  auto impl = std::make_unique<Impl>();
  impl->listen_fd = fd;
  impl->options = std::move(options);
  return std::unique_ptr<SdsServer>(new SdsServer(std::move(impl)));
}

SdsServer::SdsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SdsServer::~SdsServer() {
  Stop();
  if (impl_->listen_fd >= 0) close(impl_->listen_fd);
  unlink(impl_->options.socket_path.c_str());
  unlink((impl_->options.socket_path + ".grpc").c_str());
}

absl::Status SdsServer::Start() {
  grpc::ServerBuilder builder;
  builder.RegisterService(impl_.get());
  // Debian's gRPC 1.51 does not poll descriptors added with AddInsecureChannelFromFd
  // on a sync server that has no listening port of its own (streams hang), so it gets
  // one: a second socket beside ours, created owner-only in the same owner-only
  // directory. Only our own uid can reach it, and our uid is allowed anyway.
  mode_t old = umask(0177);
  builder.AddListeningPort("unix:" + impl_->options.socket_path + ".grpc",
                           grpc::InsecureServerCredentials());
  impl_->server = builder.BuildAndStart();
  umask(old);
  if (!impl_->server) return absl::InternalError("gRPC server failed to start");
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->AcceptLoop(); });
  return absl::OkStatus();
}

void SdsServer::Impl::AcceptLoop() {
  while (!stopping.load()) {
    pollfd p{listen_fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    // gRPC drives the descriptor from its own pollers: it must be non-blocking.
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    bool allowed = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                   cred.uid == geteuid();
    for (uid_t uid : options.allowed_uids) allowed |= cred.uid == uid;
    if (!allowed) {
      refused_peers.fetch_add(1);
      std::fprintf(stderr, "tandem-agent: SDS peer uid %u pid %d refused\n", cred.uid,
                   cred.pid);
      close(fd);
      continue;
    }
    grpc::AddInsecureChannelFromFd(server.get(), fd);
  }
}

void SdsServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  {
    absl::MutexLock lock(&impl_->mu);  // wake stream writers
  }
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
}

absl::Status SdsServer::UpdateSecret(const WorkloadSecretPem& secret) {
  absl::MutexLock lock(&impl_->mu);
  impl_->secret = secret;
  ++impl_->version;
  return absl::OkStatus();
}

uint64_t SdsServer::acks() const { return impl_->acks.load(); }
uint64_t SdsServer::nacks() const { return impl_->nacks.load(); }
uint64_t SdsServer::refused_peers() const { return impl_->refused_peers.load(); }
int SdsServer::open_streams() const { return impl_->streams.load(); }

std::string SdsServer::RenderMetrics() const {
  return absl::StrCat(
      "# HELP tandem_agent_sds_pushes_total Secrets pushed to the proxy.\n"
      "# TYPE tandem_agent_sds_pushes_total counter\ntandem_agent_sds_pushes_total ",
      impl_->pushes.load(),
      "\n# HELP tandem_agent_sds_responses_total Proxy answers to pushes, by result.\n"
      "# TYPE tandem_agent_sds_responses_total counter\n"
      "tandem_agent_sds_responses_total{result=\"ack\"} ",
      impl_->acks.load(), "\ntandem_agent_sds_responses_total{result=\"nack\"} ",
      impl_->nacks.load(),
      "\n# HELP tandem_agent_sds_refused_peers_total SDS connections refused by the "
      "peer-credential check.\n# TYPE tandem_agent_sds_refused_peers_total counter\n"
      "tandem_agent_sds_refused_peers_total ",
      impl_->refused_peers.load(),
      "\n# HELP tandem_agent_sds_streams Open SDS streams.\n"
      "# TYPE tandem_agent_sds_streams gauge\ntandem_agent_sds_streams ",
      impl_->streams.load(), "\n");
}

}  // namespace tandem::agent
