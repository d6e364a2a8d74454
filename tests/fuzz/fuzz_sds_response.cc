// Fuzzes the SDS messages the proxy accepts from the agent: the input is a serialized
// envoy DiscoveryResponse, applied as proxy/sds_client.cc does (on a fresh stream and
// on top of a secret already delivered) and, once complete, handed to the proxy's
// TlsContextManager, which must refuse anything that is not a valid secret.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/sds_response.h"
#include "proxy/tls_context_manager.h"

using tandem::WorkloadSecretPem;
using tandem::proxy::ApplySdsResponse;
using tandem::proxy::SdsSecretComplete;
using tandem::proxy::TlsContextManager;

namespace {

void Apply(const envoy::service::discovery::v3::DiscoveryResponse& response,
           const WorkloadSecretPem& held, TlsContextManager& sink) {
  absl::StatusOr<WorkloadSecretPem> merged = ApplySdsResponse(response, held);
  if (!merged.ok()) {
    // A refusal must say why: it is what the NACK carries back to the agent.
    if (merged.status().message().empty()) std::abort();
    return;
  }
  if (!SdsSecretComplete(*merged)) return;
  absl::Status installed = sink.UpdateSecret(*merged);
  if (installed.ok() && sink.Current() == nullptr) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  envoy::service::discovery::v3::DiscoveryResponse response;
  if (!response.ParseFromArray(data, static_cast<int>(size))) return 0;
  TlsContextManager sink(TlsContextManager::Options{});
  Apply(response, WorkloadSecretPem{}, sink);
  // As if "default" had arrived earlier on the stream and this brings the bundle.
  Apply(response, WorkloadSecretPem{"key", "chain", ""}, sink);
  return 0;
}
