#include "common/pki/trust_bundle.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::pki {
namespace {

VerifyFailure FailureFromX509Error(int error) {
  switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return VerifyFailure::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return VerifyFailure::kNotYetValid;
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_INVALID_PURPOSE:
      return VerifyFailure::kNotAllowed;
    default:
      return VerifyFailure::kUnknownCa;
  }
}

absl::Status Fail(VerifyFailure reason, VerifyFailure* out, absl::Status status) {
  if (out != nullptr) *out = reason;
  return status;
}

}  // namespace

std::string_view VerifyFailureName(VerifyFailure failure) {
  switch (failure) {
    case VerifyFailure::kNone:
      return "none";
    case VerifyFailure::kMalformed:
      return "malformed";
    case VerifyFailure::kUnknownCa:
      return "unknown_ca";
    case VerifyFailure::kExpired:
      return "expired";
    case VerifyFailure::kNotYetValid:
      return "not_yet_valid";
    case VerifyFailure::kBadIdentity:
      return "bad_identity";
    case VerifyFailure::kNotAllowed:
      return "not_allowed";
  }
  return "unknown";
}

absl::StatusOr<TrustBundle> TrustBundle::FromPem(std::string_view pem) {
  absl::StatusOr<std::vector<Certificate>> roots = Certificate::ChainFromPem(pem);
  if (!roots.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust bundle: ", roots.status().message()));
  }
  return FromCertificates(*std::move(roots));
}

absl::StatusOr<TrustBundle> TrustBundle::FromCertificates(
    std::vector<Certificate> roots) {
  if (roots.empty())
    return absl::InvalidArgumentError("trust bundle: no root certificate");
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  for (size_t i = 0; i < roots.size(); ++i) {
    if (!roots[i].IsCa()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust bundle: certificate ", i, " is not a CA certificate"));
    }
    if (!X509_STORE_add_cert(store.get(), roots[i].get())) {
      // A duplicate root is harmless; anything else is not.
      uint32_t err = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_REASON(err) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        return absl::InvalidArgumentError(
            absl::StrCat("trust bundle: certificate ", i, " could not be added"));
      }
    }
  }
  TrustBundle bundle(std::move(roots));
  bundle.store_ = std::shared_ptr<X509_STORE>(store.release(), X509_STORE_free);
  return bundle;
}

absl::StatusOr<SpiffeId> TrustBundle::Verify(const std::vector<Certificate>& chain,
                                             absl::Time now, VerifyFailure* failure,
                                             Validity* validity) const {
  if (failure != nullptr) *failure = VerifyFailure::kNone;
  if (chain.empty()) {
    return Fail(VerifyFailure::kMalformed, failure,
                absl::UnauthenticatedError("peer presented no certificate"));
  }
  bssl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) {
    // The stack frees its elements, so it holds references of its own.
    X509_up_ref(chain[i].get());
    sk_X509_push(untrusted.get(), chain[i].get());
  }
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx ||
      !X509_STORE_CTX_init(ctx.get(), store_.get(), chain[0].get(), untrusted.get())) {
    ERR_clear_error();
    return absl::InternalError("verification context allocation failed");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  int ok = X509_verify_cert(ctx.get());
  int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (ok != 1) {
    VerifyFailure reason = FailureFromX509Error(error);
    return Fail(reason, failure,
                absl::UnauthenticatedError(absl::StrCat(
                    "certificate chain refused (", std::string(VerifyFailureName(reason)),
                    "): ", X509_verify_cert_error_string(error))));
  }
  if (chain[0].IsCa()) {
    return Fail(VerifyFailure::kNotAllowed, failure,
                absl::PermissionDeniedError("peer leaf certificate is a CA certificate"));
  }
  absl::StatusOr<SpiffeId> id = chain[0].GetSpiffeId();
  if (!id.ok()) {
    return Fail(VerifyFailure::kBadIdentity, failure,
                absl::PermissionDeniedError(
                    absl::StrCat("peer identity refused: ", id.status().message())));
  }
  if (validity != nullptr) {
    *validity = Validity{absl::InfinitePast(), absl::InfiniteFuture()};
    STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(ctx.get());
    for (size_t i = 0; i < sk_X509_num(path); ++i) {
      Certificate cert = Certificate::FromX509(sk_X509_value(path, i));
      validity->not_before = std::max(validity->not_before, cert.not_before());
      validity->not_after = std::min(validity->not_after, cert.not_after());
    }
  }
  return id;
}

}  // namespace tandem::pki
