// The CPU floor of one CreateCertificate in tandem-ca, without gRPC or TLS: the token
// check (JwtVerifier::Verify: ES256 verify and the claims), the issuance
// (CaCore::Issue: CSR parse and signature check, the leaf signed, the chain as PEM),
// and both, as CertificateService runs them. bench/ca_load.sh's CPU per certificate
// less this is what gRPC, TLS and the kernel cost per call (docs/controlplane.md,
// "Scale").
//   build/bench/ca_issue_benchmark
// Single-threaded; a fresh CA root in a temp dir; no sockets.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "common/credential_request.h"
#include "controlplane/auth/jwt.h"
#include "controlplane/ca/ca_core.h"

namespace {

using tandem::controlplane::CaCore;
using tandem::controlplane::JwtVerifier;
using tandem::controlplane::ServiceAccount;

// One CA root, one token issuer, one token and one CSR, as the harness's agents have.
struct Fixture {
  std::string dir;
  std::unique_ptr<CaCore> core;
  std::unique_ptr<JwtVerifier> verifier;
  std::string token;
  std::string csr_pem;

  Fixture() {
    char tmpl[] = "/tmp/tandem-ca-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    tandem::controlplane::CaCoreOptions options;
    options.root_dir = dir + "/root";
    core = *CaCore::Create(options, absl::Now());
    absl::StatusOr<tandem::PendingCredential> issuer =
        tandem::NewCredentialRequest("spiffe://cluster.local/ns/load/sa/token-issuer");
    if (!issuer.ok()) std::abort();
    verifier = *JwtVerifier::Create(
        {*tandem::controlplane::PublicKeyPemOf(issuer->private_key_pem), "", "istio-ca",
         ""});
    token = *tandem::controlplane::MintServiceAccountToken(
        issuer->private_key_pem, {"load", "sa-1"}, "istio-ca", "tandem-ca-load",
        absl::Now(), absl::Hours(4));
    absl::StatusOr<tandem::PendingCredential> csr =
        tandem::NewCredentialRequest("spiffe://cluster.local/ns/load/sa/sa-1");
    if (!csr.ok()) std::abort();
    csr_pem = csr->csr_pem;
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

Fixture& Shared() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

void BM_TokenVerify(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) {
    absl::StatusOr<ServiceAccount> account = f.verifier->Verify(f.token, absl::Now());
    if (!account.ok()) std::abort();
    benchmark::DoNotOptimize(account);
  }
}
BENCHMARK(BM_TokenVerify);

void BM_Issue(benchmark::State& state) {
  Fixture& f = Shared();
  const ServiceAccount account{"load", "sa-1"};
  for (auto _ : state) {
    absl::StatusOr<std::vector<std::string>> chain =
        f.core->Issue(f.csr_pem, account, 3600, absl::Now());
    if (!chain.ok()) std::abort();
    benchmark::DoNotOptimize(chain);
  }
}
BENCHMARK(BM_Issue);

void BM_TokenVerifyAndIssue(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) {
    absl::StatusOr<ServiceAccount> account = f.verifier->Verify(f.token, absl::Now());
    if (!account.ok()) std::abort();
    absl::StatusOr<std::vector<std::string>> chain =
        f.core->Issue(f.csr_pem, *account, 3600, absl::Now());
    if (!chain.ok()) std::abort();
    benchmark::DoNotOptimize(chain);
  }
}
BENCHMARK(BM_TokenVerifyAndIssue);

}  // namespace

BENCHMARK_MAIN();
