#ifndef TANDEM_COMMON_CREDENTIAL_REQUEST_H_
#define TANDEM_COMMON_CREDENTIAL_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret_sink.h"

namespace tandem {

// A fresh in-memory P-256 key and a CSR asking for a SPIFFE ID. PEM strings only, so
// gRPC code (the agent's CA client) can use it without BoringSSL headers.
struct PendingCredential {
  std::string private_key_pem;  // never written to disk by tandem
  std::string csr_pem;
};
absl::StatusOr<PendingCredential> NewCredentialRequest(const std::string& spiffe_id);

// A certificate the CA returned, checked and ready to deliver.
struct IssuedCredential {
  WorkloadSecretPem secret;
  std::string spiffe_id;
  std::string serial;
  absl::Time not_before;
  absl::Time not_after;
};

// Takes a CA response in Istio's order (leaf, intermediates, root(s) last): self-signed
// certificates form the trust bundle (plus `extra_roots_pem`, for root rotation
// overlap), the rest the chain. Refuses a response whose leaf does not match the key,
// does not chain to the bundle, is not valid at `now`, or names another identity than
// `expected_spiffe_id` (when non-empty). When `pinned_roots_pem` is set, the chain
// must also verify against those roots (plus `extra_roots_pem`), so a CA response
// cannot bring a root of its own choosing. Errors are kInvalidArgument.
absl::StatusOr<IssuedCredential> AcceptCredential(
    const std::string& private_key_pem, const std::vector<std::string>& cert_chain,
    const std::string& extra_roots_pem, const std::string& expected_spiffe_id,
    absl::Time now, const std::string& pinned_roots_pem = "");

}  // namespace tandem

#endif  // TANDEM_COMMON_CREDENTIAL_REQUEST_H_
