#include "common/pki/workload_credentials.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::pki {

absl::StatusOr<SpiffeId> WorkloadCredentials::Validate(absl::Time now) const {
  if (chain.empty()) return absl::InvalidArgumentError("credentials: empty chain");
  if (!leaf().MatchesKey(key)) {
    return absl::InvalidArgumentError(
        "credentials: the private key does not match the leaf certificate");
  }
  VerifyFailure failure;
  absl::StatusOr<SpiffeId> id = bundle.Verify(chain, now, &failure);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials: ", id.status().message()));
  }
  return id;
}

}  // namespace tandem::pki
