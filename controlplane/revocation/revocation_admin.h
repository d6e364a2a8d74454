#ifndef TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_ADMIN_H_
#define TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_ADMIN_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/http/http_server.h"
#include "controlplane/policy/policy_watcher.h"
#include "controlplane/revocation/revocation_store.h"

namespace tandem::controlplane {

struct LoopbackAddress {
  std::string host;  // an IPv4 or IPv6 loopback literal
  uint16_t port = 0;
};
// Parses "127.0.0.1:15010", "[::1]:15010" or "localhost:15010" (port 0 allowed);
// kInvalidArgument for anything else, naming why, e.g. a non-loopback address.
absl::StatusOr<LoopbackAddress> ParseLoopbackAddress(absl::string_view address);

// tandem-ca's revocation admin endpoint, plain HTTP on loopback only (anyone who can
// reach it may revoke, so it never listens elsewhere):
//   POST /revoke  {"serial": HEX, "not_after": RFC3339} or {"spiffe_id": ID},
//                 optional "reason"; replies 200 with the entry as JSON, 400 naming
//                 the bad field, 500 when the list cannot be persisted.
//   GET /revocations  {"revocations": [entry, ...]}
//   (both only with a revocation store) and the routes added with Handle().
// Entries carry close_open_connections from the policy file in force.
// Threading: requests run on the HTTP server's thread; Create/Start/Stop from the
// owning thread.
class RevocationAdmin {
 public:
  struct Options {
    std::string address = "127.0.0.1:15010";
    RevocationStore* revocations = nullptr;  // null: no revocation routes; outlives us
    const PolicyWatcher* policy = nullptr;   // null: close_open_connections false
  };
  static absl::StatusOr<std::unique_ptr<RevocationAdmin>> Create(Options options);
  // Adds another read-only route on the same loopback server (main.cc adds
  // /policy-streams). Any thread.
  void Handle(std::string path, http::HttpServer::Handler handler);
  absl::Status Start();
  void Stop();
  uint16_t port() const { return server_->port(); }

  // The handlers, callable without a socket (tests). Any thread.
  http::HttpResponse Revoke(const http::HttpRequest& request);
  http::HttpResponse List(const http::HttpRequest& request) const;

 private:
  RevocationAdmin(Options options, std::unique_ptr<http::HttpServer> server);

  const Options options_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_ADMIN_H_
