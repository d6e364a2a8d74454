#ifndef TANDEM_COMMON_SECRET_SINK_H_
#define TANDEM_COMMON_SECRET_SINK_H_

#include <string>

#include "absl/status/status.h"

namespace tandem {

// A workload's mTLS secret as PEM text: what the agent delivers and the proxy swaps in.
// Plain strings on purpose, so code that speaks gRPC (which carries OpenSSL) can pass
// secrets along without including BoringSSL headers. Holds a private key: never log it.
struct WorkloadSecretPem {
  std::string private_key;   // PKCS#8 PEM
  std::string cert_chain;    // leaf first, then intermediates
  std::string trust_bundle;  // one or more root CAs
};

// The one narrow interface through which secrets reach a consumer (the proxy's TLS
// contexts). Implementations validate before publishing: a refused secret returns an
// error and leaves the previous one in force. Metrics and readiness wrap a SecretSink
// rather than live inside it. Implementations say which threads may call UpdateSecret.
class SecretSink {
 public:
  virtual ~SecretSink() = default;
  virtual absl::Status UpdateSecret(const WorkloadSecretPem& secret) = 0;
};

}  // namespace tandem

#endif  // TANDEM_COMMON_SECRET_SINK_H_
