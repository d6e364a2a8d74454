// gRPC code: never include <openssl/...> here.
#include "agent/sds_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "envoy/sds_service.grpc.pb.h"
#include "envoy/secret.pb.h"

namespace tandem::agent {

namespace discovery = ::envoy::service::discovery::v3;
namespace tls = ::envoy::extensions::transport_sockets::tls::v3;

namespace {

constexpr char kSecretType[] =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
constexpr char kCertName[] = "default";
constexpr char kRootName[] = "ROOTCA";
constexpr char kRefusedHelp[] =
    "SDS connections refused by the peer-credential check, by reason.";
constexpr char kSilentHelp[] =
    "SDS connections closed before sending a byte, by reason (timeout, or shed for a "
    "newer one).";
// A pause in accepting after an accept error such as EMFILE, so the loop cannot spin.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);
// Connections accepted per poll at most, so waiting ones are looked at too.
constexpr int kAcceptBatch = 64;

}  // namespace

struct SdsServer::Impl final
    : public ::envoy::service::secret::v3::SecretDiscoveryService::Service {
  explicit Impl(metrics::Registry& r)
      : pushes(r.GetCounter("tandem_agent_sds_pushes_total",
                            "Secret responses pushed to SDS streams.")),
        acks(r.GetCounter("tandem_agent_sds_responses_total",
                          "SDS clients' answers to pushes, by result.",
                          {{"result", "ack"}})),
        nacks(r.GetCounter("tandem_agent_sds_responses_total",
                           "SDS clients' answers to pushes, by result.",
                           {{"result", "nack"}})),
        refused_uid(r.GetCounter("tandem_agent_sds_refused_peers_total", kRefusedHelp,
                                 {{"reason", "uid"}})),
        refused_no_cred(r.GetCounter("tandem_agent_sds_refused_peers_total", kRefusedHelp,
                                     {{"reason", "no_peer_credentials"}})),
        silent_timeout(r.GetCounter("tandem_agent_sds_silent_closed_total", kSilentHelp,
                                    {{"reason", "timeout"}})),
        silent_shed(r.GetCounter("tandem_agent_sds_silent_closed_total", kSilentHelp,
                                 {{"reason", "shed"}})),
        streams(r.GetGauge("tandem_agent_sds_streams", "Open SDS streams.")) {}

  SdsServerOptions options;
  int listen_fd = -1;
  std::unique_ptr<grpc::Server> server;
  std::thread acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<int> open_streams{0};
  metrics::Counter& pushes;
  metrics::Counter& acks;
  metrics::Counter& nacks;
  metrics::Counter& refused_uid;
  metrics::Counter& refused_no_cred;
  metrics::Counter& silent_timeout;
  metrics::Counter& silent_shed;
  metrics::Gauge& streams;

  mutable absl::Mutex mu;
  WorkloadSecretPem secret ABSL_GUARDED_BY(mu);
  uint64_t version ABSL_GUARDED_BY(mu) = 0;

  // What one stream asked for; written by its reader, read by its writer, under `mu`.
  struct Subscription {
    std::vector<std::string> names;  // empty: every resource
    bool changed = false;            // re-send the current version
    bool reader_done = false;
  };

  void AcceptLoop();

  // What a stream writer waits for: a new version, a new subscription, shutdown, or
  // its peer going away.
  struct WaitArgs {
    Impl* impl;
    uint64_t sent;
    Subscription* sub;
    // Await calls it with `mu` held.
    static bool Changed(WaitArgs* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->impl->mu) {
      return (a->impl->version != 0 && a->impl->version != a->sent) || a->sub->changed ||
             a->sub->reader_done || a->impl->stopping.load();
    }
  };

  static bool Wants(const std::vector<std::string>& names, const char* name) {
    return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
  }

  grpc::Status StreamSecrets(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<discovery::DiscoveryResponse, discovery::DiscoveryRequest>*
          stream) override {
    discovery::DiscoveryRequest first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    if (!first.type_url().empty() && first.type_url() != kSecretType) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "this server serves only " + std::string(kSecretType));
    }
    open_streams.fetch_add(1);
    streams.Add(1);
    Subscription sub;
    {
      absl::MutexLock lock(&mu);
      sub.names.assign(first.resource_names().begin(), first.resource_names().end());
    }
    // ACKs, NACKs and subscription changes arrive while we wait to push; one reader and
    // one writer is the concurrency gRPC's sync API allows on a stream.
    std::thread reader([&] {
      discovery::DiscoveryRequest r;
      while (stream->Read(&r)) {
        if (r.has_error_detail()) {
          nacks.Inc();
          log::Warn("agent", "SDS client NACKed a secret",
                    {{"nonce", r.response_nonce()},
                     {"kept_version", r.version_info()},
                     {"error", r.error_detail().message()}});
        } else if (!r.response_nonce().empty()) {
          acks.Inc();
        }
        std::vector<std::string> names(r.resource_names().begin(),
                                       r.resource_names().end());
        absl::MutexLock lock(&mu);
        if (names != sub.names) {
          sub.names = std::move(names);
          sub.changed = true;
        }
      }
      absl::MutexLock lock(&mu);  // wakes the writer
      sub.reader_done = true;
    });
    uint64_t sent = 0, nonce = 0;
    while (!context->IsCancelled()) {
      WorkloadSecretPem current;
      std::vector<std::string> names;
      uint64_t v;
      {
        absl::MutexLock lock(&mu);
        WaitArgs args{this, sent, &sub};
        mu.AwaitWithTimeout(absl::Condition(&WaitArgs::Changed, &args),
                            absl::Milliseconds(500));
        if (stopping.load() || sub.reader_done) break;
        if (version == 0 || (version == sent && !sub.changed)) continue;
        sub.changed = false;
        current = secret;
        names = sub.names;
        v = version;
      }
      discovery::DiscoveryResponse response;
      response.set_version_info(absl::StrCat(v));
      response.set_nonce(absl::StrCat(v, "-", ++nonce));
      response.set_type_url(kSecretType);
      if (Wants(names, kCertName)) {
        tls::Secret cert;
        cert.set_name(kCertName);
        cert.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_bytes(
            current.cert_chain);
        cert.mutable_tls_certificate()->mutable_private_key()->set_inline_bytes(
            current.private_key);
        response.add_resources()->PackFrom(cert);
      }
      if (Wants(names, kRootName)) {
        tls::Secret root;
        root.set_name(kRootName);
        root.mutable_validation_context()->mutable_trusted_ca()->set_inline_bytes(
            current.trust_bundle);
        response.add_resources()->PackFrom(root);
      }
      sent = v;
      // Nothing this stream knows about: state of the world says nothing until it asks
      // for a name we serve.
      if (response.resources_size() == 0) continue;
      if (!stream->Write(response)) break;
      pushes.Inc();
    }
    context->TryCancel();
    reader.join();
    streams.Add(-1);
    open_streams.fetch_sub(1);
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
  // Non-blocking: the acceptor takes connections in batches until EAGAIN.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size());
  // Created owner-only from the first instant, not chmod'ed after the fact.
  mode_t old = umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0 || listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.socket_path, ": ", std::strerror(err)));
  }
  auto impl = std::make_unique<Impl>(options.registry ? *options.registry
                                                      : metrics::Registry::Default());
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
  for (grpc::Service* service : impl_->options.extra_services) {
    builder.RegisterService(service);
  }
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
  // Checked connections that have not spoken yet, oldest first (all share one timeout,
  // so the front also expires first).
  struct Silent {
    int fd;
    absl::Time deadline;
  };
  std::deque<Silent> silent;
  std::vector<pollfd> fds;
  absl::Time accept_paused_until = absl::InfinitePast();
  auto shed_oldest = [&] {
    if (silent.empty()) return false;
    close(silent.front().fd);
    silent.pop_front();
    silent_shed.Inc();
    return true;
  };
  while (!stopping.load()) {
    absl::Time now = absl::Now();
    while (!silent.empty() && silent.front().deadline <= now) {
      close(silent.front().fd);
      silent.pop_front();
      silent_timeout.Inc();
    }
    fds.clear();
    fds.push_back({now < accept_paused_until ? -1 : listen_fd, POLLIN, 0});
    for (const Silent& s : silent) fds.push_back({s.fd, POLLIN, 0});
    // Wakes at least every 100 ms to notice Stop().
    absl::Time wake = now + absl::Milliseconds(100);
    if (!silent.empty()) wake = std::min(wake, silent.front().deadline);
    if (now < accept_paused_until) wake = std::min(wake, accept_paused_until);
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(wake - now)) + 1;
    if (poll(fds.data(), fds.size(), timeout_ms) <= 0) continue;

    // Bytes (or a hang-up, which gRPC then sees) arrived: gRPC takes over; the bytes
    // stay in the socket for it.
    size_t kept = 0;
    for (size_t i = 0; i < silent.size(); ++i) {
      if (fds[i + 1].revents != 0) {
        grpc::AddInsecureChannelFromFd(server.get(), silent[i].fd);
      } else {
        silent[kept++] = silent[i];
      }
    }
    silent.resize(kept);

    if (!(fds[0].revents & POLLIN)) continue;
    for (int accepted = 0; accepted < kAcceptBatch; ++accepted) {
      // gRPC drives the descriptor from its own pollers: it must be non-blocking.
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE) && shed_oldest()) {
        fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      }
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED) {
          accept_paused_until = absl::Now() + kAcceptBackoff;  // e.g. EMFILE
        }
        break;
      }
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        refused_no_cred.Inc();
        log::Warn("agent", "SDS peer refused: no peer credentials",
                  {{"error", std::strerror(errno)}});
        close(fd);
        continue;
      }
      bool allowed = cred.uid == geteuid();
      for (uid_t uid : options.allowed_uids) allowed |= cred.uid == uid;
      if (!allowed) {
        refused_uid.Inc();
        log::Warn("agent", "SDS peer refused: uid not allowed",
                  {{"uid", cred.uid}, {"pid", cred.pid}});
        close(fd);
        continue;
      }
      if (silent.size() >= std::max<size_t>(options.max_silent_connections, 1)) {
        shed_oldest();
      }
      silent.push_back({fd, absl::Now() + options.first_bytes_timeout});
    }
  }
  for (const Silent& s : silent) close(s.fd);
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

uint64_t SdsServer::acks() const { return impl_->acks.Value(); }
uint64_t SdsServer::nacks() const { return impl_->nacks.Value(); }
uint64_t SdsServer::refused_peers() const {
  return impl_->refused_uid.Value() + impl_->refused_no_cred.Value();
}
int SdsServer::open_streams() const { return impl_->open_streams.load(); }

}  // namespace tandem::agent
