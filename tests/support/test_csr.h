#ifndef TANDEM_TESTS_SUPPORT_TEST_CSR_H_
#define TANDEM_TESTS_SUPPORT_TEST_CSR_H_

#include <string>

namespace tandem::controlplane {

// Test-only: returns a well-formed, correctly self-signed PEM CSR over an RSA key of
// `bits` asking for `uri_san` (1024 bits: a CSR tandem-ca must refuse as too weak).
// Any thread. The header names no BoringSSL type, so gRPC tests may include it.
std::string MakeRsaCsrPem(const std::string& uri_san, int bits);

}  // namespace tandem::controlplane

#endif  // TANDEM_TESTS_SUPPORT_TEST_CSR_H_
