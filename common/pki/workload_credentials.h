#ifndef TANDEM_COMMON_PKI_WORKLOAD_CREDENTIALS_H_
#define TANDEM_COMMON_PKI_WORKLOAD_CREDENTIALS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/certificate.h"
#include "common/pki/private_key.h"
#include "common/pki/trust_bundle.h"
#include "common/spiffe_id.h"

namespace tandem::pki {

// What a workload needs for mTLS: its key, its chain (leaf first) and the roots it
// trusts. The unit the agent delivers and the proxy swaps in. Immutable value.
struct WorkloadCredentials {
  PrivateKey key;
  std::vector<Certificate> chain;
  TrustBundle bundle;

  // Checks the set is usable before anyone publishes it: a non-empty chain whose leaf
  // matches the key, carries exactly one SPIFFE ID, is valid at `now`, and chains to
  // `bundle`. Returns the leaf's SPIFFE ID.
  absl::StatusOr<SpiffeId> Validate(absl::Time now) const;
  const Certificate& leaf() const { return chain.front(); }
};

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_WORKLOAD_CREDENTIALS_H_
