#ifndef TANDEM_COMMON_PKI_KEY_POLICY_H_
#define TANDEM_COMMON_PKI_KEY_POLICY_H_

#include <openssl/base.h>

#include <string>

#include "absl/status/status.h"

namespace tandem::pki {

// The key algorithms tandem accepts, for messages.
inline constexpr char kAcceptedKeys[] =
    "ECDSA P-256 or P-384, or RSA of 2048 to 8192 bits";

// Checks a public or private key against what tandem accepts anywhere a key comes
// from outside (CSRs, CA keys, workload keys delivered over SDS): ECDSA on P-256 (the
// key tandem generates) or P-384, and RSA of 2048 to 8192 bits (Istio's agent sends
// RSA-2048 CSRs unless told otherwise; enterprise CAs are often RSA). kInvalidArgument
// naming the key and the reason otherwise, e.g. "RSA-1024 is too weak: ...". Pure;
// any thread.
absl::Status CheckKeyStrength(EVP_PKEY* key);

// Names a key for messages and logs: "ECDSA P-256", "RSA-3072", "Ed25519".
std::string DescribeKey(EVP_PKEY* key);

// Returns the digest a CA signs with under `key`: SHA-384 for P-384 (matching the
// curve's strength), SHA-256 for everything else (PKCS#1 v1.5 for RSA, as Istio's and
// most CAs sign).
const EVP_MD* SigningDigestFor(EVP_PKEY* key);

}  // namespace tandem::pki

#endif  // TANDEM_COMMON_PKI_KEY_POLICY_H_
