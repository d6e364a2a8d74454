#ifndef TANDEM_CONTROLPLANE_SERVE_FLAGS_H_
#define TANDEM_CONTROLPLANE_SERVE_FLAGS_H_

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "controlplane/auth/token_review_authenticator.h"
#include "controlplane/server/ca_server.h"

// `tandem-ca serve`'s flags into option structs: part of main.cc's front end (the only
// code besides its test that uses it), in a file of its own so its refusals have unit
// tests. Refusals name the flag first ("--max-ttl: not a positive duration").
namespace tandem::controlplane {

// The CA server's options from --root-dir, --root-dir-mode, --trust-domain, --listen,
// --audience, --issuer, --default-ttl, --max-ttl, --dns-names, --ip-addresses,
// --token-public-key, --token-jwks, --token-review (with the --kube-* flags),
// --extra-roots, --root-reload-interval and --policy-poll, reading the files they name.
// Leaves `policy` and `revocations` null: main.cc opens those (file or ConfigMap) and
// checks that --admin has something to serve.
absl::StatusOr<CaServerOptions> CaServerOptionsFromFlags(const Flags& flags);

// How to reach the Kubernetes API server (TokenReview, the webhook's caBundle): from
// --kube-api-server, --kube-ca-file, --kube-token-file and --kube-server-name, or
// without --kube-api-server from the pod's environment. Refusals are not prefixed: the
// caller names the flag that needed the API server.
absl::StatusOr<TokenReviewAuthenticator::Options> KubeApiOptionsFromFlags(
    const Flags& flags);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_SERVE_FLAGS_H_
