// Fuzzes the SDS messages the proxy accepts from the agent: the input is a serialized
// envoy DiscoveryResponse, applied as proxy/sds_client.cc does (on a fresh stream and
// on top of a secret already delivered) and, once complete, handed to the proxy's
// TlsContextManager, which must refuse anything that is not a valid secret. The same
// bytes, taken as what the agent's socket delivers, go through GrpcStream's deframer.
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>

#include "proxy/grpc_stream.h"
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

// Deframing keeps every byte: the messages' bodies and prefixes plus what is left (a
// partial message) add up to the input, and nothing over the limit comes out.
void Deframe(const uint8_t* data, size_t size) {
  std::string buffer(reinterpret_cast<const char*>(data), size);
  std::deque<std::string> messages;
  if (!tandem::proxy::GrpcStream::Deframe(buffer, messages).ok()) return;
  size_t total = buffer.size();
  for (const std::string& m : messages) {
    if (m.size() > tandem::proxy::kMaxGrpcMessageBytes) std::abort();
    total += 5 + m.size();
  }
  if (total != size) std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Deframe(data, size);
  envoy::service::discovery::v3::DiscoveryResponse response;
  if (!response.ParseFromArray(data, static_cast<int>(size))) return 0;
  TlsContextManager sink(TlsContextManager::Options{});
  Apply(response, WorkloadSecretPem{}, sink);
  // As if "default" had arrived earlier on the stream and this brings the bundle.
  Apply(response, WorkloadSecretPem{"key", "chain", ""}, sink);
  return 0;
}
