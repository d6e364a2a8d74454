// Protobuf only: no gRPC and no BoringSSL headers here.
#include "proxy/sds_response.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "envoy/secret.pb.h"

namespace tandem::proxy {
namespace {

namespace tls = ::envoy::extensions::transport_sockets::tls::v3;

std::string DataSourceText(const ::envoy::config::core::v3::DataSource& ds) {
  return ds.has_inline_bytes() ? ds.inline_bytes() : ds.inline_string();
}

}  // namespace

absl::StatusOr<WorkloadSecretPem> ApplySdsResponse(
    const ::envoy::service::discovery::v3::DiscoveryResponse& response,
    const WorkloadSecretPem& held) {
  if (response.type_url() != kSdsSecretTypeUrl) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected type_url ", response.type_url()));
  }
  // A copy: a refused response must not leak into the next one.
  WorkloadSecretPem merged = held;
  for (const google::protobuf::Any& any : response.resources()) {
    tls::Secret secret;
    if (any.type_url() != kSdsSecretTypeUrl || !any.UnpackTo(&secret)) {
      return absl::InvalidArgumentError("resource is not an envoy Secret");
    }
    if (secret.has_tls_certificate()) {
      merged.cert_chain = DataSourceText(secret.tls_certificate().certificate_chain());
      merged.private_key = DataSourceText(secret.tls_certificate().private_key());
    } else if (secret.has_validation_context()) {
      merged.trust_bundle = DataSourceText(secret.validation_context().trusted_ca());
    }
  }
  return merged;
}

bool SdsSecretComplete(const WorkloadSecretPem& secret) {
  return !secret.cert_chain.empty() && !secret.trust_bundle.empty();
}

}  // namespace tandem::proxy
