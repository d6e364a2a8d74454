// Fuzzes the CA's service-account token checks (controlplane/auth/jwt.h). The first byte
// picks what the rest is:
//   0: a token as a caller sends it (base64url, header, signature checks);
//   1: "<header JSON>\n<claims JSON>", signed here with the verifier's own key so the
//      claim checks behind the signature are reached too;
//   2: a JWKS document, as the CA is configured with.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/pki/private_key.h"
#include "controlplane/auth/jwt.h"

using tandem::controlplane::JwtVerifier;
using tandem::controlplane::ServiceAccount;

namespace {

// Fixed, so a replayed corpus takes the same paths.
const absl::Time kNow = absl::FromUnixSeconds(1700000000);

struct Fixture {
  std::string private_key_pem;
  std::unique_ptr<JwtVerifier> verifier;
  std::string good_token;

  Fixture() {
    private_key_pem = *tandem::pki::PrivateKey::GenerateP256()->ToPem();
    JwtVerifier::Options options;
    options.public_keys_pem = *tandem::controlplane::PublicKeyPemOf(private_key_pem);
    verifier = *JwtVerifier::Create(options);
    good_token = *tandem::controlplane::MintServiceAccountToken(
        private_key_pem, {"ns", "sa"}, "istio-ca", "issuer", kNow, absl::Hours(1));
  }
};

void CheckVerdict(const absl::StatusOr<ServiceAccount>& account) {
  if (account.ok()) {
    if (account->ns.empty() || account->name.empty()) std::abort();
  } else if (account.status().code() != absl::StatusCode::kUnauthenticated) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      CheckVerdict(fixture->verifier->Verify(rest, kNow));
      break;
    case 1: {
      size_t newline = rest.find('\n');
      if (newline == std::string::npos) return 0;
      absl::StatusOr<std::string> token = tandem::controlplane::SignEs256Jws(
          fixture->private_key_pem, rest.substr(0, newline), rest.substr(newline + 1));
      if (token.ok()) CheckVerdict(fixture->verifier->Verify(*token, kNow));
      break;
    }
    case 2: {
      JwtVerifier::Options options;
      options.jwks_json = rest;
      absl::StatusOr<std::unique_ptr<JwtVerifier>> verifier =
          JwtVerifier::Create(options);
      if (!verifier.ok()) {
        if (verifier.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
        return 0;
      }
      if ((*verifier)->key_count() == 0) std::abort();
      CheckVerdict((*verifier)->Verify(fixture->good_token, kNow));
      break;
    }
  }
  return 0;
}
