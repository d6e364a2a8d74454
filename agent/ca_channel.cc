// gRPC code: never include <openssl/...> here.
#include "agent/ca_channel.h"

namespace tandem::agent {

std::shared_ptr<grpc::Channel> NewCaChannel(const CaClientOptions& options) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.root_pem;
  return grpc::CreateCustomChannel(options.address, grpc::SslCredentials(ssl),
                                   CaChannelArguments(options));
}

grpc::ChannelArguments CaChannelArguments(const CaClientOptions& options) {
  grpc::ChannelArguments args;
  if (!options.server_name.empty()) args.SetSslTargetNameOverride(options.server_name);
  // Reconnect quickly after a CA restart; callers have their own retry schedules.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return args;
}

}  // namespace tandem::agent
