#ifndef TANDEM_TESTS_SUPPORT_TEST_CA_H_
#define TANDEM_TESTS_SUPPORT_TEST_CA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::agent {

// Test double: an in-memory root CA that mints the certificates a fake
// IstioCertificateService returns, plus a serving certificate for 127.0.0.1 /
// "tandem-ca". PEM strings only, so gRPC test code can use it without BoringSSL
// headers. Immutable after Create; any thread may call its methods.
class TestCa {
 public:
  static absl::StatusOr<std::unique_ptr<TestCa>> Create(std::string trust_domain);
  ~TestCa();

  // Signs `csr_pem`'s key for `spiffe_id` (the CSR's own wishes are ignored, as a real
  // CA does). Returns Istio's order: leaf, then the root.
  absl::StatusOr<std::vector<std::string>> Issue(const std::string& csr_pem,
                                                 const std::string& spiffe_id,
                                                 absl::Duration ttl) const;
  // A well-formed chain from this CA for `spiffe_id`, but over a key nobody asked for.
  absl::StatusOr<std::vector<std::string>> IssueForAnotherKey(
      const std::string& spiffe_id, absl::Duration ttl) const;

  const std::string& root_pem() const;
  const std::string& server_key_pem() const;
  const std::string& server_chain_pem() const;

  struct State;

 private:
  explicit TestCa(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tandem::agent

#endif  // TANDEM_TESTS_SUPPORT_TEST_CA_H_
