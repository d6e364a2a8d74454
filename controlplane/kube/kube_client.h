#ifndef TANDEM_CONTROLPLANE_KUBE_KUBE_CLIENT_H_
#define TANDEM_CONTROLPLANE_KUBE_KUBE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/kube/https_client.h"
#include "controlplane/kube/watch_event_parser.h"
#include "nlohmann/json.hpp"

namespace tandem::controlplane {

// A small client of the Kubernetes API's REST contract, on HttpsClient (one HTTP path
// for TokenReview, the webhook's caBundle and this): JSON requests, LIST, WATCH
// streams, and read-modify-write with optimistic concurrency.
// - TLS: the API server is verified against `ca_pem` (the service account's ca.crt)
//   and its name.
// - Credentials: the bearer token is read from `token_path` (a projected token the
//   kubelet rotates), re-read every `token_refresh` and at once after a 401, when the
//   request is retried once with the new token.
// Threading: immutable after Create apart from the cached token (under a mutex); any
// thread may call any method (each request has its own connection).
class KubeClient {
 public:
  struct Options {
    std::string api_server;   // "host:port"
    std::string ca_pem;       // verifies the API server
    std::string server_name;  // expected in its certificate; default: the host
    std::string token_path;   // re-read as above; or, fixed (tests):
    std::string token;
    absl::Duration timeout = absl::Seconds(5);  // each request; a watch's connect
    absl::Duration token_refresh = absl::Minutes(1);
    size_t max_response_bytes = size_t{8} << 20;
  };
  static absl::StatusOr<std::unique_ptr<KubeClient>> Create(Options options);

  // One request (a JSON body unless "GET"/"DELETE"); any HTTP status is returned as a
  // response. kUnavailable/kDeadlineExceeded for transport failures, kNotFound when
  // the token file cannot be read.
  absl::StatusOr<HttpsResponse> Call(const std::string& method, const std::string& path,
                                     const std::string& body = "") const;

  struct ObjectList {
    std::vector<nlohmann::json> items;
    std::string resource_version;  // the list's metadata.resourceVersion
  };
  // LISTs `collection` (a path, query allowed, e.g.
  // ".../configmaps?labelSelector=a%3Db").
  absl::StatusOr<ObjectList> List(const std::string& collection) const;

  // WATCHes `collection` from `resource_version` (a LIST's, or the last event's) with
  // allowWatchBookmarks=true and timeoutSeconds=`timeout` (the server ends the watch
  // then), calling `on_event` for every ADDED/MODIFIED/DELETED/BOOKMARK event. OK when
  // the server ended the watch, `cancelled` turned true or `on_event` returned false;
  // kOutOfRange when `resource_version` is too old (HTTP 410, or an ERROR event with
  // code 410): LIST again; kUnavailable for another ERROR event, a malformed stream or
  // a transport failure; StatusFromHttp's codes for another HTTP status.
  absl::Status Watch(const std::string& collection, const std::string& resource_version,
                     absl::Duration timeout, const std::atomic<bool>* cancelled,
                     const std::function<bool(const WatchEvent&)>& on_event) const;

  // Changes the object `name` of `collection`: GETs it, lets `edit` change it (null
  // when it does not exist; `edit` returns false to leave it as it is) and writes it
  // back, PUT with the resourceVersion it was read at, or POST for a new one. A 409
  // (someone wrote first) starts again from a fresh GET, `max_conflicts` rounds at
  // most (then kAborted). Returns the object as stored (null if absent and left so).
  using Edit = std::function<absl::StatusOr<bool>(nlohmann::json* object)>;
  absl::StatusOr<nlohmann::json> Update(const std::string& collection,
                                        const std::string& name, const Edit& edit,
                                        int max_conflicts = 5) const;

  // How many times the token file was read (tests).
  uint64_t token_reads() const { return token_reads_.load(); }

 private:
  KubeClient(Options options, std::unique_ptr<HttpsClient> http);
  // The bearer token: cached, re-read when older than token_refresh or `force`.
  absl::StatusOr<std::string> Token(bool force) const;
  std::vector<std::pair<std::string, std::string>> AuthHeader(
      const std::string& token) const;

  const Options options_;
  std::unique_ptr<HttpsClient> http_;
  mutable std::atomic<uint64_t> token_reads_{0};
  mutable absl::Mutex mu_;
  mutable std::string token_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time token_read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Maps an API server reply that is not 2xx to a status naming `what` and the Status
// object's message: 404 kNotFound, 409 kAlreadyExists (reason AlreadyExists) or
// kAborted (a conflict), 410 kOutOfRange, 401/403 kPermissionDenied, else kUnavailable.
absl::Status StatusFromHttp(const HttpsResponse& response, absl::string_view what);

// Appends `param` ("k=v") to `path` with '?' or '&'.
std::string WithQuery(const std::string& path, absl::string_view param);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_KUBE_CLIENT_H_
