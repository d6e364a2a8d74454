#ifndef TANDEM_CONTROLPLANE_AUTH_TOKEN_REVIEW_AUTHENTICATOR_H_
#define TANDEM_CONTROLPLANE_AUTH_TOKEN_REVIEW_AUTHENTICATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/auth/token_authenticator.h"
#include "controlplane/kube/https_client.h"

namespace tandem::controlplane {

// Kubernetes mode: asks the API server whether a caller's token is valid by creating
// a TokenReview (authentication.k8s.io/v1) over HTTPS, authenticated with the CA's own
// service-account token, with the audiences the token must be for. Accepts only
// "authenticated": true with a "system:serviceaccount:<ns>:<name>" user and, when
// audiences were sent, an answer naming one of them. API server failures (transport,
// non-2xx, garbage) are kUnavailable "token_review_unavailable" so callers retry;
// a denial is kUnauthenticated "token_review_denied". One review per call (no cache).
// Immutable after Create; any thread may call Authenticate.
// The header names no BoringSSL type, so gRPC code may include it.
class TokenReviewAuthenticator : public TokenAuthenticator {
 public:
  struct Options {
    std::string api_server;   // "host:port" of the API server
    std::string ca_pem;       // verifies the API server
    std::string server_name;  // expected in its certificate; default: the host
    // The CA's own service-account token: read from the file for every review
    // (projected tokens rotate), or taken as is when the path is empty.
    std::string credential_token_path;
    std::string credential_token;
    std::vector<std::string> audiences = {"istio-ca"};
    absl::Duration timeout = absl::Seconds(5);
  };
  static constexpr char kInClusterTokenPath[] =
      "/var/run/secrets/kubernetes.io/serviceaccount/token";
  static constexpr char kInClusterCaPath[] =
      "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

  // Returns options for running inside a pod: KUBERNETES_SERVICE_HOST/PORT and the
  // mounted service-account token and CA. kFailedPrecondition when not in a pod.
  static absl::StatusOr<Options> InClusterOptions();
  static absl::StatusOr<std::unique_ptr<TokenReviewAuthenticator>> Create(
      Options options);
  ~TokenReviewAuthenticator() override;

  absl::StatusOr<ServiceAccount> Authenticate(const std::string& token,
                                              absl::Time now) const override;

 private:
  TokenReviewAuthenticator(Options options, std::unique_ptr<HttpsClient> client);
  Options options_;
  std::unique_ptr<HttpsClient> client_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_AUTH_TOKEN_REVIEW_AUTHENTICATOR_H_
