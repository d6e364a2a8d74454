// BoringSSL code: never include gRPC headers here.
#include "controlplane/auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <cmath>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/pki/private_key.h"
#include "controlplane/auth/refusal_reason.h"
#include "controlplane/kube/json_depth.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace tandem::controlplane {
namespace {

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr absl::Duration kLeeway = absl::Seconds(30);
constexpr unsigned kMinRsaBits = 2048;
// A token's header and claims nest three levels ("kubernetes.io"); the cap keeps the
// parser's stack and destructor shallow on whatever a caller sends.
constexpr int kMaxTokenJsonDepth = 16;

enum class KeyType { kEc, kRsa };

// Decodes unpadded base64url strictly: only the URL-safe alphabet, no padding, no
// whitespace, and unused trailing bits must be zero (one encoding per value).
bool Base64UrlDecode(absl::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (in.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
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

// Returns the string field `k`, or "" when absent or not a string.
std::string StringField(const google::protobuf::Struct& s, const std::string& k) {
  const google::protobuf::Value* v = Field(s, k);
  return v != nullptr && v->has_string_value() ? v->string_value() : std::string();
}

// A token's header or claims: every CreateCertificate and stream parses two, so
// nlohmann's parser rather than protobuf's JSON-to-Struct (a sixth of the CPU of a
// certificate's token check and issuance: bench/ca_issue_benchmark).
std::optional<nlohmann::json> ParseTokenObject(const std::string& json) {
  if (!JsonNestsWithin(json, kMaxTokenJsonDepth)) return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  return doc;
}

const nlohmann::json* Member(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// Returns the string member `key`, or "" when absent or not a string.
std::string StringMember(const nlohmann::json& object, const char* key) {
  const nlohmann::json* v = Member(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

// Reads a NumericDate claim. Returns false when present but not a sane number.
bool TimeClaim(const nlohmann::json& claims, const char* name,
               std::optional<absl::Time>* out) {
  const nlohmann::json* v = Member(claims, name);
  if (v == nullptr) return true;
  if (!v->is_number()) return false;
  double seconds = v->get<double>();
  // Years 1970..5138: also keeps the cast below defined.
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e11) return false;
  *out = absl::FromUnixSeconds(static_cast<int64_t>(seconds));
  return true;
}

absl::Status CheckKey(EVP_PKEY* pkey, const std::string& where) {
  if (EVP_PKEY_id(pkey) == EVP_PKEY_EC) {
    const EC_GROUP* group = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(pkey));
    if (group == nullptr || EC_GROUP_get_curve_name(group) != NID_X9_62_prime256v1) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": EC key is not P-256"));
    }
    return absl::OkStatus();
  }
  if (EVP_PKEY_id(pkey) == EVP_PKEY_RSA) {
    if (RSA_bits(EVP_PKEY_get0_RSA(pkey)) < kMinRsaBits) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": RSA key shorter than ", kMinRsaBits, " bits"));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": neither EC nor RSA"));
}

bssl::UniquePtr<BIGNUM> BignumFromBase64Url(const std::string& b64) {
  std::string raw;
  if (b64.empty() || !Base64UrlDecode(b64, &raw)) return nullptr;
  return bssl::UniquePtr<BIGNUM>(
      BN_bin2bn(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), nullptr));
}

absl::StatusOr<bssl::UniquePtr<EVP_PKEY>> KeyFromJwk(const google::protobuf::Struct& jwk,
                                                     const std::string& where) {
  const std::string kty = StringField(jwk, "kty");
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  if (kty == "EC") {
    if (StringField(jwk, "crv") != "P-256") {
      return absl::InvalidArgumentError(absl::StrCat(where, ": crv is not P-256"));
    }
    std::string x, y;
    if (!Base64UrlDecode(StringField(jwk, "x"), &x) ||
        !Base64UrlDecode(StringField(jwk, "y"), &y) || x.size() != 32 || y.size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": bad x/y"));
    }
    std::string point = absl::StrCat("\x04", x, y);
    bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
    bssl::UniquePtr<EC_POINT> p(EC_POINT_new(EC_KEY_get0_group(ec.get())));
    if (!ec || !p ||
        !EC_POINT_oct2point(EC_KEY_get0_group(ec.get()), p.get(),
                            reinterpret_cast<const uint8_t*>(point.data()), point.size(),
                            nullptr) ||
        !EC_KEY_set_public_key(ec.get(), p.get()) || !EC_KEY_check_key(ec.get()) ||
        !EVP_PKEY_assign_EC_KEY(pkey.get(), ec.release())) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(where, ": not a P-256 point"));
    }
  } else if (kty == "RSA") {
    bssl::UniquePtr<BIGNUM> n = BignumFromBase64Url(StringField(jwk, "n"));
    bssl::UniquePtr<BIGNUM> e = BignumFromBase64Url(StringField(jwk, "e"));
    bssl::UniquePtr<RSA> rsa(RSA_new());
    if (!n || !e || !rsa || !RSA_set0_key(rsa.get(), n.get(), e.get(), nullptr)) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(where, ": bad n/e"));
    }
    n.release();  // owned by rsa now
    e.release();
    if (!EVP_PKEY_assign_RSA(pkey.get(), rsa.release())) {
      return absl::InternalError("EVP_PKEY_assign_RSA failed");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": kty \"", kty, "\""));
  }
  if (absl::Status s = CheckKey(pkey.get(), where); !s.ok()) return s;
  return pkey;
}

}  // namespace

struct JwtVerifier::Keys {
  struct Key {
    std::string kid;  // empty: matches any kid
    KeyType type;
    bssl::UniquePtr<EVP_PKEY> pkey;
  };
  std::vector<Key> keys;
};

JwtVerifier::JwtVerifier(Options options, std::unique_ptr<Keys> keys)
    : options_(std::move(options)), keys_(std::move(keys)) {}
JwtVerifier::~JwtVerifier() = default;
size_t JwtVerifier::key_count() const { return keys_->keys.size(); }

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(Options options) {
  auto keys = std::make_unique<Keys>();
  auto add = [&](std::string kid, bssl::UniquePtr<EVP_PKEY> pkey) {
    KeyType type = EVP_PKEY_id(pkey.get()) == EVP_PKEY_EC ? KeyType::kEc : KeyType::kRsa;
    keys->keys.push_back({std::move(kid), type, std::move(pkey)});
  };
  if (!options.public_keys_pem.empty()) {
    bssl::UniquePtr<BIO> bio(
        BIO_new_mem_buf(options.public_keys_pem.data(), options.public_keys_pem.size()));
    for (int i = 0;; ++i) {
      bssl::UniquePtr<EVP_PKEY> pkey(
          PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
      if (!pkey) break;
      std::string where = absl::StrCat("token public key #", i + 1);
      if (absl::Status s = CheckKey(pkey.get(), where); !s.ok()) return s;
      add("", std::move(pkey));
    }
    ERR_clear_error();
    if (keys->keys.empty()) {
      return absl::InvalidArgumentError("token public keys: no PEM public key found");
    }
  }
  if (!options.jwks_json.empty()) {
    absl::StatusOr<google::protobuf::Struct> jwks = ParseObject(options.jwks_json);
    const google::protobuf::Value* list = jwks.ok() ? Field(*jwks, "keys") : nullptr;
    if (list == nullptr || !list->has_list_value()) {
      return absl::InvalidArgumentError("JWKS: not an object with a \"keys\" list");
    }
    size_t before = keys->keys.size();
    for (int i = 0; i < list->list_value().values_size(); ++i) {
      const google::protobuf::Value& v = list->list_value().values(i);
      std::string where = absl::StrCat("JWKS key #", i + 1);
      if (!v.has_struct_value()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
      }
      const google::protobuf::Struct& jwk = v.struct_value();
      std::string use = StringField(jwk, "use");
      if (!use.empty() && use != "sig") continue;  // encryption keys are not ours
      absl::StatusOr<bssl::UniquePtr<EVP_PKEY>> pkey = KeyFromJwk(jwk, where);
      if (!pkey.ok()) return pkey.status();
      add(StringField(jwk, "kid"), *std::move(pkey));
    }
    if (keys->keys.size() == before) {
      return absl::InvalidArgumentError("JWKS: no signing key");
    }
  }
  if (keys->keys.empty()) {
    return absl::InvalidArgumentError("token verifier: no public key and no JWKS");
  }
  return std::unique_ptr<JwtVerifier>(
      new JwtVerifier(std::move(options), std::move(keys)));
}

absl::StatusOr<ServiceAccount> JwtVerifier::Verify(const std::string& token,
                                                   absl::Time now) const {
  if (token.empty()) return TokenRefused("malformed_token", "empty");
  if (token.size() > kMaxTokenBytes) {
    return TokenRefused("malformed_token", "larger than 16 KiB");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3)
    return TokenRefused("malformed_token", "not a JWS compact token");
  std::string header_json, payload_json, signature;
  if (!Base64UrlDecode(parts[0], &header_json) ||
      !Base64UrlDecode(parts[1], &payload_json) ||
      !Base64UrlDecode(parts[2], &signature)) {
    return TokenRefused("malformed_token", "bad base64url");
  }
  std::optional<nlohmann::json> header = ParseTokenObject(header_json);
  if (!header) return TokenRefused("malformed_token", "header is not a JSON object");
  if (Member(*header, "crit") != nullptr) {
    return TokenRefused("unsupported_algorithm", "critical header extensions");
  }
  const std::string alg = StringMember(*header, "alg");
  KeyType type;
  if (alg == "ES256") {
    type = KeyType::kEc;
    if (signature.size() != 64) {
      return TokenRefused("malformed_token", "ES256 signature must be 64 bytes");
    }
  } else if (alg == "RS256") {
    type = KeyType::kRsa;
  } else {
    return TokenRefused("unsupported_algorithm", "alg must be ES256 or RS256");
  }
  const std::string kid = StringMember(*header, "kid");

  // Verify before trusting anything in the payload.
  std::string der_signature = signature;
  if (type == KeyType::kEc) {
    bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_SIG_new());
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(signature.data());
    uint8_t* der = nullptr;
    size_t der_len = 0;
    if (!sig || !BN_bin2bn(raw, 32, sig->r) || !BN_bin2bn(raw + 32, 32, sig->s) ||
        !ECDSA_SIG_to_bytes(&der, &der_len, sig.get())) {
      ERR_clear_error();
      return TokenRefused("malformed_token", "bad signature encoding");
    }
    der_signature.assign(reinterpret_cast<char*>(der), der_len);
    OPENSSL_free(der);
  }
  const std::string signed_part = absl::StrCat(parts[0], ".", parts[1]);
  bool candidate = false, verified = false;
  for (const Keys::Key& key : keys_->keys) {
    if (key.type != type || (!kid.empty() && !key.kid.empty() && key.kid != kid)) {
      continue;
    }
    candidate = true;
    bssl::ScopedEVP_MD_CTX ctx;
    verified =
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.pkey.get()) ==
            1 &&
        EVP_DigestVerify(
            ctx.get(), reinterpret_cast<const uint8_t*>(der_signature.data()),
            der_signature.size(), reinterpret_cast<const uint8_t*>(signed_part.data()),
            signed_part.size()) == 1;
    ERR_clear_error();
    if (verified) break;
  }
  if (!candidate) {
    return TokenRefused("unknown_key", absl::StrCat("no ", alg, " key",
                                                    kid.empty() ? "" : " with this kid"));
  }
  if (!verified) return TokenRefused("bad_signature", "signature does not verify");

  std::optional<nlohmann::json> claims = ParseTokenObject(payload_json);
  if (!claims) return TokenRefused("malformed_token", "payload is not a JSON object");
  std::optional<absl::Time> exp, nbf, iat;
  if (!TimeClaim(*claims, "exp", &exp) || !TimeClaim(*claims, "nbf", &nbf) ||
      !TimeClaim(*claims, "iat", &iat)) {
    return TokenRefused("malformed_token", "exp/nbf/iat must be NumericDates");
  }
  if (!exp) return TokenRefused("malformed_token", "exp is missing");
  if (*exp + kLeeway < now) return TokenRefused("expired", "expired");
  if (nbf && *nbf - kLeeway > now) return TokenRefused("not_yet_valid", "not valid yet");
  if (iat && *iat - kLeeway > now) {
    return TokenRefused("not_yet_valid", "issued in the future");
  }
  bool audience_ok = false;
  if (const nlohmann::json* aud = Member(*claims, "aud")) {
    if (aud->is_string()) audience_ok = aud->get<std::string>() == options_.audience;
    if (aud->is_array()) {
      for (const nlohmann::json& v : *aud) {
        audience_ok |= v.is_string() && v.get<std::string>() == options_.audience;
      }
    }
  }
  if (!audience_ok) {
    return TokenRefused("wrong_audience",
                        absl::StrCat("audience is not \"", options_.audience, "\""));
  }
  if (!options_.issuer.empty() && StringMember(*claims, "iss") != options_.issuer) {
    return TokenRefused("wrong_issuer", "wrong issuer");
  }
  ServiceAccount account;
  if (const nlohmann::json* k8s = Member(*claims, "kubernetes.io");
      k8s != nullptr && k8s->is_object()) {
    account.ns = StringMember(*k8s, "namespace");
    if (const nlohmann::json* sa = Member(*k8s, "serviceaccount");
        sa != nullptr && sa->is_object()) {
      account.name = StringMember(*sa, "name");
    }
  }
  // "sub" must agree with "kubernetes.io" when both are present.
  std::vector<std::string> sub = absl::StrSplit(StringMember(*claims, "sub"), ':');
  if (sub.size() == 4 && sub[0] == "system" && sub[1] == "serviceaccount") {
    if (account.ns.empty() && account.name.empty()) {
      account = {sub[2], sub[3]};
    } else if (account.ns != sub[2] || account.name != sub[3]) {
      return TokenRefused("no_identity", "sub and kubernetes.io disagree");
    }
  }
  if (account.ns.empty() || account.name.empty()) {
    return TokenRefused("no_identity", "no service account in the claims");
  }
  return account;
}

absl::StatusOr<std::string> SignEs256Jws(const std::string& private_key_pem,
                                         const std::string& header_json,
                                         const std::string& payload_json) {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::FromPem(private_key_pem);
  if (!key.ok()) return key.status();
  // PrivateKey also loads P-384 and RSA keys; ES256 is P-256 only.
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key->get());
  if (ec == nullptr ||
      EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != NID_X9_62_prime256v1) {
    return absl::InvalidArgumentError("ES256 needs an EC P-256 key");
  }
  std::string signing_input =
      absl::StrCat(Base64UrlEncode(header_json), ".", Base64UrlEncode(payload_json));
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(signing_input.data()), signing_input.size(),
         digest);
  bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_do_sign(digest, sizeof(digest), ec));
  uint8_t raw[64];
  if (!sig || !BN_bn2bin_padded(raw, 32, sig->r) ||
      !BN_bn2bin_padded(raw + 32, 32, sig->s)) {
    return absl::InternalError("signing failed");
  }
  return absl::StrCat(
      signing_input, ".",
      Base64UrlEncode(absl::string_view(reinterpret_cast<char*>(raw), 64)));
}

absl::StatusOr<std::string> MintServiceAccountToken(const std::string& private_key_pem,
                                                    const ServiceAccount& account,
                                                    const std::string& audience,
                                                    const std::string& issuer,
                                                    absl::Time now, absl::Duration ttl) {
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
  return SignEs256Jws(private_key_pem, R"({"alg":"ES256","typ":"JWT"})", payload);
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
