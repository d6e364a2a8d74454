// BoringSSL code: never include gRPC headers here.
#include "controlplane/jwt.h"

#include <openssl/base64.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/pki/private_key.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace tandem::controlplane {
namespace {

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr absl::Duration kLeeway = absl::Seconds(30);

absl::Status Refuse(const std::string& why) {
  return absl::UnauthenticatedError(absl::StrCat("token refused: ", why));
}

bool Base64UrlDecode(absl::string_view in, std::string* out) {
  if (in.find('=') != absl::string_view::npos) return false;  // JWTs carry no padding
  return absl::WebSafeBase64Unescape(in, out);
}

std::string Base64UrlEncode(absl::string_view in) {
  std::string out;
  absl::WebSafeBase64Escape(in, &out);
  return out;
}

absl::StatusOr<google::protobuf::Struct> ParseObject(const std::string& json) {
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok()) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  return s;
}

const google::protobuf::Value* Field(const google::protobuf::Struct& s,
                                     const std::string& k) {
  auto it = s.fields().find(k);
  return it == s.fields().end() ? nullptr : &it->second;
}

}  // namespace

struct JwtVerifier::Key {
  bssl::UniquePtr<EVP_PKEY> pkey;
};

JwtVerifier::JwtVerifier(Options options, std::unique_ptr<Key> key)
    : options_(std::move(options)), key_(std::move(key)) {}
JwtVerifier::~JwtVerifier() = default;

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(Options options) {
  bssl::UniquePtr<BIO> bio(
      BIO_new_mem_buf(options.public_key_pem.data(), options.public_key_pem.size()));
  bssl::UniquePtr<EVP_PKEY> pkey(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!pkey || EVP_PKEY_id(pkey.get()) != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("token signing key: not a PEM EC public key");
  }
  auto key = std::make_unique<Key>();
  key->pkey = std::move(pkey);
  return std::unique_ptr<JwtVerifier>(
      new JwtVerifier(std::move(options), std::move(key)));
}

absl::StatusOr<ServiceAccount> JwtVerifier::Verify(const std::string& token,
                                                   absl::Time now) const {
  if (token.empty()) return Refuse("empty");
  if (token.size() > kMaxTokenBytes) return Refuse("larger than 16 KiB");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Refuse("not a JWS compact token");
  std::string header_json, payload_json, signature;
  if (!Base64UrlDecode(parts[0], &header_json) ||
      !Base64UrlDecode(parts[1], &payload_json) ||
      !Base64UrlDecode(parts[2], &signature)) {
    return Refuse("bad base64url");
  }
  absl::StatusOr<google::protobuf::Struct> header = ParseObject(header_json);
  if (!header.ok()) return Refuse("header is not a JSON object");
  const google::protobuf::Value* alg = Field(*header, "alg");
  if (alg == nullptr || alg->string_value() != "ES256")
    return Refuse("alg must be ES256");
  if (signature.size() != 64) return Refuse("ES256 signature must be 64 bytes");

  // Verify before trusting anything in the payload.
  std::string signed_part = absl::StrCat(parts[0], ".", parts[1]);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(signed_part.data()), signed_part.size(),
         digest);
  bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_SIG_new());
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(signature.data());
  if (!BN_bin2bn(raw, 32, sig->r) || !BN_bin2bn(raw + 32, 32, sig->s)) {
    return Refuse("bad signature encoding");
  }
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key_->pkey.get());
  int ok = ECDSA_do_verify(digest, sizeof(digest), sig.get(), ec);
  ERR_clear_error();
  if (ok != 1) return Refuse("signature does not verify");

  absl::StatusOr<google::protobuf::Struct> claims = ParseObject(payload_json);
  if (!claims.ok()) return Refuse("payload is not a JSON object");
  const google::protobuf::Value* exp = Field(*claims, "exp");
  if (exp == nullptr || !exp->has_number_value()) return Refuse("exp is missing");
  if (absl::FromUnixSeconds(static_cast<int64_t>(exp->number_value())) + kLeeway < now) {
    return Refuse("expired");
  }
  if (const google::protobuf::Value* nbf = Field(*claims, "nbf");
      nbf != nullptr &&
      absl::FromUnixSeconds(static_cast<int64_t>(nbf->number_value())) - kLeeway > now) {
    return Refuse("not valid yet");
  }
  bool audience_ok = false;
  if (const google::protobuf::Value* aud = Field(*claims, "aud")) {
    if (aud->has_string_value()) audience_ok = aud->string_value() == options_.audience;
    if (aud->has_list_value()) {
      for (const auto& v : aud->list_value().values()) {
        audience_ok |= v.string_value() == options_.audience;
      }
    }
  }
  if (!audience_ok)
    return Refuse(absl::StrCat("audience is not \"", options_.audience, "\""));
  if (!options_.issuer.empty()) {
    const google::protobuf::Value* iss = Field(*claims, "iss");
    if (iss == nullptr || iss->string_value() != options_.issuer)
      return Refuse("wrong issuer");
  }
  ServiceAccount account;
  if (const google::protobuf::Value* k8s = Field(*claims, "kubernetes.io");
      k8s != nullptr && k8s->has_struct_value()) {
    if (const auto* ns = Field(k8s->struct_value(), "namespace"))
      account.ns = ns->string_value();
    if (const auto* sa = Field(k8s->struct_value(), "serviceaccount");
        sa != nullptr && sa->has_struct_value()) {
      if (const auto* name = Field(sa->struct_value(), "name")) {
        account.name = name->string_value();
      }
    }
  }
  if (account.ns.empty() || account.name.empty()) {
    const google::protobuf::Value* sub = Field(*claims, "sub");
    std::vector<std::string> p =
        absl::StrSplit(sub ? sub->string_value() : std::string(), ':');
    if (p.size() == 4 && p[0] == "system" && p[1] == "serviceaccount") {
      account.ns = p[2];
      account.name = p[3];
    }
  }
  if (account.ns.empty() || account.name.empty()) {
    return Refuse("no service account in the claims");
  }
  return account;
}

absl::StatusOr<std::string> MintServiceAccountToken(const std::string& private_key_pem,
                                                    const ServiceAccount& account,
                                                    const std::string& audience,
                                                    const std::string& issuer,
                                                    absl::Time now, absl::Duration ttl) {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(private_key_pem);
  if (!key.ok()) return key.status();
  google::protobuf::Struct claims;
  auto& f = *claims.mutable_fields();
  f["iss"].set_string_value(issuer);
  f["aud"].set_string_value(audience);
  f["sub"].set_string_value(
      absl::StrCat("system:serviceaccount:", account.ns, ":", account.name));
  f["iat"].set_number_value(static_cast<double>(absl::ToUnixSeconds(now)));
  f["nbf"].set_number_value(static_cast<double>(absl::ToUnixSeconds(now)));
  f["exp"].set_number_value(static_cast<double>(absl::ToUnixSeconds(now + ttl)));
  auto& k8s = *f["kubernetes.io"].mutable_struct_value()->mutable_fields();
  k8s["namespace"].set_string_value(account.ns);
  (*k8s["serviceaccount"].mutable_struct_value()->mutable_fields())["name"]
      .set_string_value(account.name);
  std::string payload;
  if (!google::protobuf::util::MessageToJsonString(claims, &payload).ok()) {
    return absl::InternalError("claims encoding failed");
  }
  std::string signing_input = absl::StrCat(
      Base64UrlEncode(R"({"alg":"ES256","typ":"JWT"})"), ".", Base64UrlEncode(payload));
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(signing_input.data()), signing_input.size(),
         digest);
  bssl::UniquePtr<ECDSA_SIG> sig(
      ECDSA_do_sign(digest, sizeof(digest), EVP_PKEY_get0_EC_KEY(key->get())));
  uint8_t raw[64];
  if (!sig || !BN_bn2bin_padded(raw, 32, sig->r) ||
      !BN_bn2bin_padded(raw + 32, 32, sig->s)) {
    return absl::InternalError("signing failed");
  }
  return absl::StrCat(
      signing_input, ".",
      Base64UrlEncode(absl::string_view(reinterpret_cast<char*>(raw), 64)));
}

absl::StatusOr<std::string> PublicKeyPemOf(const std::string& private_key_pem) {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(private_key_pem);
  if (!key.ok()) return key.status();
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(bio.get(), key->get())) {
    return absl::InternalError("public key encoding failed");
  }
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace tandem::controlplane
