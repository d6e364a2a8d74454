#include "common/pki/key_policy.h"

#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/rsa.h>

#include "absl/strings/str_cat.h"

namespace tandem::pki {
namespace {

constexpr unsigned kMinRsaBits = 2048;
// Larger keys buy nothing and cost every peer that verifies them.
constexpr unsigned kMaxRsaBits = 8192;

// Returns the NID of an EC key's curve, or NID_undef.
int CurveOf(EVP_PKEY* key) {
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key);
  if (ec == nullptr || EC_KEY_get0_group(ec) == nullptr) return NID_undef;
  return EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
}

}  // namespace

std::string DescribeKey(EVP_PKEY* key) {
  if (key == nullptr) return "no key";
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_RSA:
      return absl::StrCat("RSA-", EVP_PKEY_bits(key));
    case EVP_PKEY_EC:
      switch (CurveOf(key)) {
        case NID_X9_62_prime256v1:
          return "ECDSA P-256";
        case NID_secp384r1:
          return "ECDSA P-384";
        case NID_undef:
          return "ECDSA on an unnamed curve";
        default:
          return absl::StrCat("ECDSA ", OBJ_nid2sn(CurveOf(key)));
      }
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return absl::StrCat("key type ", EVP_PKEY_id(key));
  }
}

absl::Status CheckKeyStrength(EVP_PKEY* key) {
  if (key == nullptr) return absl::InvalidArgumentError("no public key");
  const std::string name = DescribeKey(key);
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_RSA: {
      unsigned bits = EVP_PKEY_bits(key);
      if (bits < kMinRsaBits) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, " is too weak: RSA keys need at least ", kMinRsaBits, " bits"));
      }
      if (bits > kMaxRsaBits) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " is larger than the ", kMaxRsaBits, " bits accepted"));
      }
      return absl::OkStatus();
    }
    case EVP_PKEY_EC: {
      int curve = CurveOf(key);
      if (curve == NID_X9_62_prime256v1 || curve == NID_secp384r1) {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is not accepted: the curve must be P-256 or P-384"));
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is not accepted: use ", kAcceptedKeys));
  }
}

const EVP_MD* SigningDigestFor(EVP_PKEY* key) {
  if (key != nullptr && EVP_PKEY_id(key) == EVP_PKEY_EC &&
      CurveOf(key) == NID_secp384r1) {
    return EVP_sha384();
  }
  return EVP_sha256();
}

}  // namespace tandem::pki
