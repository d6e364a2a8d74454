#ifndef TANDEM_AGENT_CA_CHANNEL_H_
#define TANDEM_AGENT_CA_CHANNEL_H_

// gRPC code only: never include this next to <openssl/...>.
#include <grpcpp/grpcpp.h>

#include <memory>

#include "agent/ca_client.h"

namespace tandem::agent {

// Returns a TLS channel to the CA that verifies it with `options.root_pem` (and
// `server_name`), reconnecting quickly after a CA restart. Shared by the certificate
// client and the policy relay so both reach the CA the same way.
std::shared_ptr<grpc::Channel> NewCaChannel(const CaClientOptions& options);
// Returns the arguments NewCaChannel uses (server name, reconnect backoff), for a
// caller that needs more of them (bench/ca_load: one connection per simulated agent).
grpc::ChannelArguments CaChannelArguments(const CaClientOptions& options);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_CA_CHANNEL_H_
