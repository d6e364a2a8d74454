// Fuzzes PEM/DER certificate parsing and chain verification, as a proxy does with a
// peer's chain and the agent with a CA's response.
#include <cstdint>
#include <string>

#include "common/pki/certificate.h"
#include "common/pki/trust_bundle.h"

using tandem::pki::Certificate;
using tandem::pki::TrustBundle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Certificate> der = Certificate::FromDer(input);
  if (der.ok()) {
    (void)der->GetSpiffeId();
    (void)der->SerialHex();
    (void)der->not_after();
  }
  absl::StatusOr<std::vector<Certificate>> chain = Certificate::ChainFromPem(input);
  if (!chain.ok()) return 0;
  for (const Certificate& cert : *chain) {
    (void)cert.GetSpiffeId();
    (void)cert.Subject();
    (void)cert.IsCa();
  }
  // A fuzzed chain must never verify against a bundle made of its own CA certs unless
  // it really chains; either way, verification must not crash.
  absl::StatusOr<TrustBundle> bundle = TrustBundle::FromCertificates({chain->back()});
  if (bundle.ok()) (void)bundle->Verify(*chain, absl::Now());
  return 0;
}
