#ifndef TANDEM_COMMON_SPIFFE_ID_H_
#define TANDEM_COMMON_SPIFFE_ID_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem {

// A validated SPIFFE ID: spiffe://<trust-domain>/<path>, per the SPIFFE ID spec
// (lower-case trust domain of [a-z0-9.-_], path segments of [A-Za-z0-9.-_], no empty,
// "." or ".." segments, no query, fragment, port or userinfo, at most 2048 bytes).
// A value type; immutable after construction, so any thread may use it.
class SpiffeId {
 public:
  // Parses and validates `uri`. Refusals are kInvalidArgument with the reason.
  static absl::StatusOr<SpiffeId> Parse(std::string_view uri);
  // Builds the Kubernetes workload identity spiffe://td/ns/<ns>/sa/<sa>.
  static absl::StatusOr<SpiffeId> ForWorkload(std::string_view trust_domain,
                                              std::string_view ns,
                                              std::string_view service_account);
  // Validates a bare trust domain name.
  static absl::Status ValidateTrustDomain(std::string_view trust_domain);

  const std::string& trust_domain() const { return trust_domain_; }
  // The path including its leading '/', or empty for a trust-domain ID.
  const std::string& path() const { return path_; }
  std::string ToString() const { return "spiffe://" + trust_domain_ + path_; }

  // Returns the namespace / service account of a Kubernetes workload ID
  // (/ns/<ns>/sa/<sa>), or empty when the path has another shape.
  std::string KubernetesNamespace() const;
  std::string KubernetesServiceAccount() const;

  friend bool operator==(const SpiffeId&, const SpiffeId&) = default;

 private:
  SpiffeId(std::string trust_domain, std::string path)
      : trust_domain_(std::move(trust_domain)), path_(std::move(path)) {}

  std::string trust_domain_;
  std::string path_;
};

}  // namespace tandem

#endif  // TANDEM_COMMON_SPIFFE_ID_H_
