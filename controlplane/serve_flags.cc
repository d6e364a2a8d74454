#include "controlplane/serve_flags.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace tandem::controlplane {
namespace {

// The file a flag names into *out; false when it cannot be read.
bool ReadFlagFile(const Flags& flags, const char* name, std::string* out) {
  absl::StatusOr<std::string> text = ReadFileToString(flags.Get(name));
  if (!text.ok()) return false;
  *out = *std::move(text);
  return true;
}

// A positive duration flag into *out (left as is when the flag is absent).
bool PositiveDuration(const Flags& flags, const char* name, absl::Duration* out) {
  absl::StatusOr<absl::Duration> d = flags.GetDuration(name, *out, absl::Milliseconds(1));
  if (!d.ok()) return false;
  *out = *d;
  return true;
}

absl::Status Refused(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<TokenReviewAuthenticator::Options> KubeApiOptionsFromFlags(
    const Flags& flags) {
  TokenReviewAuthenticator::Options api;
  if (!flags.Has("kube-api-server")) {
    // In a pod: the API server, its CA and our token come from the environment.
    absl::StatusOr<TokenReviewAuthenticator::Options> in_cluster =
        TokenReviewAuthenticator::InClusterOptions();
    if (!in_cluster.ok()) {
      return absl::FailedPreconditionError(
          std::string(in_cluster.status().message()) +
          " (outside a pod give --kube-api-server, --kube-ca-file and "
          "--kube-token-file)");
    }
    api = *std::move(in_cluster);
  } else {
    api.api_server = flags.Get("kube-api-server");
    api.credential_token_path =
        flags.Get("kube-token-file", TokenReviewAuthenticator::kInClusterTokenPath);
    std::string ca_file =
        flags.Get("kube-ca-file", TokenReviewAuthenticator::kInClusterCaPath);
    absl::StatusOr<std::string> ca_pem = ReadFileToString(ca_file);
    if (!ca_pem.ok())
      return absl::NotFoundError("--kube-ca-file: cannot read " + ca_file);
    api.ca_pem = *std::move(ca_pem);
  }
  if (flags.Has("kube-token-file"))
    api.credential_token_path = flags.Get("kube-token-file");
  if (flags.Has("kube-server-name")) api.server_name = flags.Get("kube-server-name");
  return api;
}

absl::StatusOr<CaServerOptions> CaServerOptionsFromFlags(const Flags& flags) {
  CaServerOptions options;
  options.core.root_dir = flags.Get("root-dir", "/var/lib/tandem-ca");
  options.core.trust_domain = flags.Get("trust-domain", "cluster.local");
  if (std::string mode = flags.Get("root-dir-mode", "owner-only");
      mode == "secret-volume") {
    options.core.key_permissions = KeyPermissions::kSecretVolume;
  } else if (mode != "owner-only") {
    return Refused("--root-dir-mode: owner-only or secret-volume");
  }
  options.listen_address = flags.Get("listen", "0.0.0.0:15012");
  options.audience = flags.Get("audience", "istio-ca");
  options.issuer = flags.Get("issuer");
  if (!PositiveDuration(flags, "default-ttl", &options.core.default_ttl)) {
    return Refused("--default-ttl: not a positive duration (e.g. 1h, 30s)");
  }
  if (!PositiveDuration(flags, "max-ttl", &options.core.max_ttl)) {
    return Refused("--max-ttl: not a positive duration");
  }
  if (flags.Has("dns-names")) {
    options.core.server_dns_names =
        absl::StrSplit(flags.Get("dns-names"), ',', absl::SkipEmpty());
  }
  if (flags.Has("ip-addresses")) {
    options.core.server_ips =
        absl::StrSplit(flags.Get("ip-addresses"), ',', absl::SkipEmpty());
  }
  if (flags.Has("token-public-key") &&
      !ReadFlagFile(flags, "token-public-key", &options.token_public_key_pem)) {
    return Refused("--token-public-key: cannot read " + flags.Get("token-public-key"));
  }
  if (flags.Has("token-jwks") &&
      !ReadFlagFile(flags, "token-jwks", &options.token_jwks_json)) {
    return Refused("--token-jwks: cannot read " + flags.Get("token-jwks"));
  }
  if (flags.Has("token-review")) {
    absl::StatusOr<TokenReviewAuthenticator::Options> review =
        KubeApiOptionsFromFlags(flags);
    if (!review.ok()) {
      return absl::Status(review.status().code(),
                          "--token-review: " + std::string(review.status().message()));
    }
    options.token_review = *std::move(review);
  }
  // Re-read with the key and certificate every --root-reload-interval.
  options.core.extra_roots_file = flags.Get("extra-roots");
  if (std::string unused;
      flags.Has("extra-roots") && !ReadFlagFile(flags, "extra-roots", &unused)) {
    return Refused("--extra-roots: cannot read " + options.core.extra_roots_file);
  }
  if (flags.Has("root-reload-interval") && flags.Get("root-reload-interval") == "0") {
    options.root_reload_interval = absl::ZeroDuration();
  } else if (!PositiveDuration(flags, "root-reload-interval",
                               &options.root_reload_interval)) {
    return Refused("--root-reload-interval: not a positive duration (e.g. 5s), or 0");
  }
  if (!PositiveDuration(flags, "policy-poll", &options.policy_poll_interval)) {
    return Refused("--policy-poll: not a positive duration (e.g. 1s, 500ms)");
  }
  return options;
}

}  // namespace tandem::controlplane
