// Fuzzes the proxy's JSON config parser: accepted configs must satisfy the invariants
// the data plane relies on, and their lookups must not crash.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/config.h"
#include "proxy/mesh_policy.h"

using tandem::proxy::InboundPortPolicy;
using tandem::proxy::MeshPolicy;
using tandem::proxy::ParseProxyConfig;
using tandem::proxy::ProxyOptions;
using tandem::proxy::SocketAddress;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<ProxyOptions> options =
      ParseProxyConfig(std::string(reinterpret_cast<const char*>(data), size));
  if (!options.ok()) {
    if (options.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (options->workers < 1 || options->max_connections < 1 ||
      options->buffer_bytes == 0) {
    std::abort();
  }
  // The config file's rules are the starting mesh policy: its lookups must hold up.
  std::shared_ptr<const MeshPolicy> policy = MeshPolicy::FromConfigRules(options->policy);
  for (const char* address : {"10.1.2.3:80", "[fd00::1]:443", "127.0.0.1:15006"}) {
    SocketAddress destination = *SocketAddress::Parse(address);
    (void)policy->IsMeshed(destination);
    (void)policy->ExpectedIdentity(destination);
    InboundPortPolicy inbound = policy->InboundPolicy(destination.port());
    (void)tandem::proxy::IdentityAllowed(inbound.allowed_identities,
                                         "spiffe://cluster.local/ns/a/sa/b");
  }
  (void)policy->ToJson();
  return 0;
}
