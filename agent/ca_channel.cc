// gRPC code: never include <openssl/...> here.
#include "agent/ca_channel.h"

#include "absl/strings/ascii.h"
#include "common/file_util.h"
#include "common/log/log.h"

namespace tandem::agent {

CaChannel::CaChannel(CaClientOptions options) : options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  root_pem_ = options_.root_pem;
}

std::shared_ptr<grpc::Channel> CaChannel::Get() {
  absl::MutexLock lock(&mu_);
  // Files change by rename (a Kubernetes volume's symlink swap), so a read sees one
  // version or the other; an empty root file is a write in progress, not "trust none".
  for (auto [path, pem] : {std::pair{&options_.root_file, &root_pem_},
                           std::pair{&options_.extra_roots_file, &extra_pem_}}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadFileToString(*path);
    if (!text.ok()) {
      log::Warn("agent", "CA roots file unreadable; keeping the roots it had",
                {{"file", *path}, {"error", std::string(text.status().message())}});
    } else if (pem == &extra_pem_ || !absl::StripAsciiWhitespace(*text).empty()) {
      *pem = *std::move(text);
    }
  }
  std::string roots = root_pem_;
  if (!roots.empty() && roots.back() != '\n') roots += '\n';
  roots += extra_pem_;
  if (channel_ != nullptr && roots == roots_) return channel_;
  if (channel_ != nullptr)
    log::Info("agent", "CA roots changed; new connections trust them");
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = roots;
  channel_ = grpc::CreateCustomChannel(options_.address, grpc::SslCredentials(ssl),
                                       CaChannelArguments(options_));
  roots_ = std::move(roots);
  return channel_;
}

grpc::ChannelArguments CaChannelArguments(const CaClientOptions& options) {
  grpc::ChannelArguments args;
  if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
  // Reconnect quickly after a CA restart; callers have their own retry schedules.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // A connection attempt (TCP, TLS, the server's SETTINGS) may take 60 s, not gRPC's
  // 20 s: when a whole fleet reconnects to a restarted CA, attempts queue behind each
  // other's handshakes, and one abandoned at 20 s has cost both ends its handshake
  // and starts again at the back of the queue. In bench/ca_load's storm (6,000
  // agents, loaded machine) 20 s left 2,254 agents out at 60 s after 7,849
  // handshakes; 60 s brought all back by 41.5 s with one handshake each. The price:
  // an attempt lost to a blackholed address is given up after 60 s, not 20 s.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 60000);
  return args;
}

}  // namespace tandem::agent
