// Fuzzes tandem-ca's handling of what callers send beyond the token (controlplane/ca/
// ca_core.h). The first byte picks what the rest is:
//   0: a CSR, issued for a fixed service account: an issued leaf must carry that
//      account's SPIFFE ID whatever the CSR asked for;
//   1: the certificate chain a renewing caller presents.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "common/pki/certificate.h"
#include "controlplane/ca/ca_core.h"

using tandem::controlplane::CaCore;
using tandem::controlplane::CaCoreOptions;

namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

std::string* ca_dir = nullptr;  // removed at exit

std::unique_ptr<CaCore> MakeCa() {
  char dir[] = "/tmp/tandem-fuzz-ca-XXXXXX";
  if (mkdtemp(dir) == nullptr) std::abort();
  ca_dir = new std::string(dir);
  std::atexit([] { std::filesystem::remove_all(*ca_dir); });
  CaCoreOptions options;
  options.root_dir = *ca_dir + "/root";
  absl::StatusOr<std::unique_ptr<CaCore>> ca = CaCore::Create(options, kNow);
  if (!ca.ok()) std::abort();
  return *std::move(ca);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static CaCore* ca = MakeCa().release();
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    absl::StatusOr<std::vector<std::string>> issued =
        ca->Issue(rest, {"ns", "sa"}, /*requested_seconds=*/0, kNow);
    if (!issued.ok()) return 0;
    absl::StatusOr<tandem::pki::Certificate> leaf =
        tandem::pki::Certificate::FromPem(issued->front());
    if (!leaf.ok()) std::abort();
    absl::StatusOr<tandem::SpiffeId> id = leaf->GetSpiffeId();
    if (!id.ok() || id->ToString() != "spiffe://cluster.local/ns/ns/sa/sa") std::abort();
  } else {
    (void)ca->AuthenticatePeer(rest, kNow);
  }
  return 0;
}
