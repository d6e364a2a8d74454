// Fuzzes the CA's CSR handling: parse, verify, read the requested SANs.
#include <cstdint>
#include <string>

#include "common/pki/certificate_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tandem::pki::CertificateRequest> csr =
      tandem::pki::CertificateRequest::FromPem(input);
  if (csr.ok()) {
    (void)csr->RequestedUris();
    (void)csr->ToPem();
  }
  return 0;
}
