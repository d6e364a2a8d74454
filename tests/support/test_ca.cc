// BoringSSL code: never include gRPC headers here.
#include "tests/support/test_ca.h"

#include "absl/time/clock.h"
#include "common/pki/certificate_authority.h"
#include "common/spiffe_id.h"

namespace tandem::agent {

struct TestCa::State {
  pki::CertificateAuthority ca;
  std::string root_pem;
  std::string server_key_pem;
  std::string server_chain_pem;
};

absl::StatusOr<std::unique_ptr<TestCa>> TestCa::Create(std::string trust_domain) {
  pki::CertificateAuthority::RootOptions options;
  options.common_name = "tandem agent test root";
  options.trust_domain = trust_domain;
  absl::Time now = absl::Now();
  absl::StatusOr<pki::CertificateAuthority> ca =
      pki::CertificateAuthority::CreateRoot(options, now);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<pki::PrivateKey> server_key = pki::PrivateKey::GenerateP256();
  if (!server_key.ok()) return server_key.status();
  absl::StatusOr<SpiffeId> server_id =
      SpiffeId::ForWorkload(trust_domain, "tandem-system", "tandem-ca");
  if (!server_id.ok()) return server_id.status();
  absl::StatusOr<pki::Certificate> server =
      ca->IssueServer(*server_key, *server_id, {"tandem-ca", "localhost"}, {"127.0.0.1"},
                      absl::Hours(1), now);
  if (!server.ok()) return server.status();
  absl::StatusOr<std::string> key_pem = server_key->ToPem();
  if (!key_pem.ok()) return key_pem.status();
  std::string root_pem = ca->root().ToPem();
  std::string server_chain_pem = server->ToPem() + root_pem;
  auto state =
      std::make_unique<State>(State{*std::move(ca), std::move(root_pem),
                                    *std::move(key_pem), std::move(server_chain_pem)});
  return std::unique_ptr<TestCa>(new TestCa(std::move(state)));
}

TestCa::TestCa(std::unique_ptr<State> state) : state_(std::move(state)) {}
TestCa::~TestCa() = default;

absl::StatusOr<std::vector<std::string>> TestCa::Issue(const std::string& csr_pem,
                                                       const std::string& spiffe_id,
                                                       absl::Duration ttl) const {
  absl::StatusOr<pki::CertificateRequest> csr = pki::CertificateRequest::FromPem(csr_pem);
  if (!csr.ok()) return csr.status();
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(spiffe_id);
  if (!id.ok()) return id.status();
  absl::StatusOr<pki::Certificate> leaf =
      state_->ca.IssueWorkload(*csr, *id, ttl, absl::Now());
  if (!leaf.ok()) return leaf.status();
  return std::vector<std::string>{leaf->ToPem(), state_->root_pem};
}

absl::StatusOr<std::vector<std::string>> TestCa::IssueForAnotherKey(
    const std::string& spiffe_id, absl::Duration ttl) const {
  absl::StatusOr<SpiffeId> id = SpiffeId::Parse(spiffe_id);
  if (!id.ok()) return id.status();
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<pki::CertificateRequest> csr =
      pki::CertificateRequest::Create(*key, *id);
  if (!csr.ok()) return csr.status();
  return Issue(csr->ToPem(), spiffe_id, ttl);
}

const std::string& TestCa::root_pem() const { return state_->root_pem; }
const std::string& TestCa::server_key_pem() const { return state_->server_key_pem; }
const std::string& TestCa::server_chain_pem() const { return state_->server_chain_pem; }

}  // namespace tandem::agent
