#ifndef TANDEM_TESTS_SUPPORT_TEST_CSR_H_
#define TANDEM_TESTS_SUPPORT_TEST_CSR_H_

#include <string>

namespace tandem::controlplane {

// Test-only: returns a well-formed, correctly self-signed PEM CSR over an RSA-2048 key
// asking for `uri_san`: a CSR tandem-ca must refuse (workload keys are P-256 only).
// Any thread. The header names no BoringSSL type, so gRPC tests may include it.
std::string MakeRsaCsrPem(const std::string& uri_san);

}  // namespace tandem::controlplane

#endif  // TANDEM_TESTS_SUPPORT_TEST_CSR_H_
