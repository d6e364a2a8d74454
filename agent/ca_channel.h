#ifndef TANDEM_AGENT_CA_CHANNEL_H_
#define TANDEM_AGENT_CA_CHANNEL_H_

// gRPC code only: never include this next to <openssl/...>.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/ca_client.h"

namespace tandem::agent {

// The TLS channel to the CA, shared in kind by the certificate client and the policy
// relay so both reach the CA the same way: it verifies the CA against
// `options.root_pem` (or the current content of `options.root_file`) plus the roots in
// `options.extra_roots_file`, both files re-read at every Get(), and reconnects quickly
// after a CA restart. When the roots changed since the last Get() (a root rotation:
// tandem-ca's own certificate moves to the next root, which the bundle gained first),
// Get() builds a new channel; calls in flight finish on the old one. A file that
// cannot be read keeps the roots of the last Get().
//
// Threading: any thread.
class CaChannel {
 public:
  explicit CaChannel(CaClientOptions options);
  std::shared_ptr<grpc::Channel> Get();

 private:
  const CaClientOptions options_;
  absl::Mutex mu_;
  std::string root_pem_ ABSL_GUARDED_BY(mu_);   // the last root file read
  std::string extra_pem_ ABSL_GUARDED_BY(mu_);  // the last extra roots read
  std::string roots_ ABSL_GUARDED_BY(mu_);      // what `channel_` trusts
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
};

// Returns the arguments CaChannel uses (server name, reconnect backoff, connection
// attempt timeout), for a caller that needs more of them (bench/ca_load: one
// connection per simulated agent).
grpc::ChannelArguments CaChannelArguments(const CaClientOptions& options);

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_CA_CHANNEL_H_
