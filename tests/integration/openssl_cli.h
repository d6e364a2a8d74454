#ifndef TANDEM_TESTS_INTEGRATION_OPENSSL_CLI_H_
#define TANDEM_TESTS_INTEGRATION_OPENSSL_CLI_H_

#include <string>

#include "absl/status/statusor.h"

namespace tandem::testing {

// Key material made by the openssl command-line tool (OpenSSL 3, not our BoringSSL),
// as operators and Istio's tooling make it: tests of what tandem accepts from outside
// use these rather than keys tandem made itself. Each method runs `openssl` in `dir`
// (a test's temp dir) and returns PEM text, or an error holding openssl's output.
// Main test thread only.
class OpensslCli {
 public:
  explicit OpensslCli(std::string dir) : dir_(std::move(dir)) {}

  // Runs `openssl <args>` (a shell word list) in the directory; returns its output.
  absl::StatusOr<std::string> Run(const std::string& args) const;

  // Writes <name>.key: `algorithm` is "RSA:<bits>", "EC:<curve>" (P-256, P-384,
  // secp521r1, secp256k1) or "ED25519". Returns the key's PEM.
  absl::StatusOr<std::string> GenerateKey(const std::string& name,
                                          const std::string& algorithm) const;
  // Writes <name>.csr over <name>.key asking for `uri_san` (as Istio's agent does:
  // subject O=..., the SPIFFE ID as URI SAN). Returns the CSR's PEM.
  absl::StatusOr<std::string> MakeCsr(const std::string& name,
                                      const std::string& uri_san) const;
  // Writes <name>.crt: a self-signed CA certificate over <name>.key (CA:TRUE critical,
  // keyCertSign). Returns its PEM.
  absl::StatusOr<std::string> MakeRoot(const std::string& name) const;
  // Writes <name>.crt: a CA certificate over <name>.key signed by <issuer>.crt/.key.
  absl::StatusOr<std::string> MakeIntermediate(const std::string& name,
                                               const std::string& issuer) const;

  std::string PathOf(const std::string& file) const { return dir_ + "/" + file; }

 private:
  absl::Status WriteCaConfig(const std::string& name) const;

  std::string dir_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_OPENSSL_CLI_H_
