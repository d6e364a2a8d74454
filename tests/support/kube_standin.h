#ifndef TANDEM_TESTS_SUPPORT_KUBE_STANDIN_H_
#define TANDEM_TESTS_SUPPORT_KUBE_STANDIN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/kube/https_client.h"
#include "controlplane/kube/kube_client.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"

namespace tandem::testing {

// Runs tests/support/kube_api_standin.py (the API-server stand-in) on 127.0.0.1, port
// 0, over HTTPS with a certificate for "kubernetes.default.svc", "localhost" and
// 127.0.0.1 from a fresh root, accepting the bearer token in token_path() (rewrite it
// with SetToken to rotate). Its log is printed when the test fails (Subprocess).
// Main test thread only.
class KubeStandin {
 public:
  struct Options {
    std::vector<std::string> namespaces = {"tandem-system"};  // exist from the start
    double bookmark_interval_seconds = 1.0;
  };
  // Starts it; a failed start fails the test (ADD_FAILURE) and returns null.
  static std::unique_ptr<KubeStandin> Start(Options options);
  static std::unique_ptr<KubeStandin> Start() { return Start(Options()); }

  std::string address() const;  // "127.0.0.1:PORT"
  int port() const { return port_; }
  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& ca_path() const { return ca_path_; }
  const std::string& token_path() const { return token_path_; }
  void SetToken(const std::string& token);
  // Options for a KubeClient of this stand-in (its CA, its token file).
  controlplane::KubeClient::Options ClientOptions() const;

  // Calls the API as an admin (the current token), e.g. ("PUT", path, json).
  absl::StatusOr<controlplane::HttpsResponse> Call(const std::string& method,
                                                   const std::string& path,
                                                   const std::string& body = "") const;
  // POSTs to a /_test/ control (compact, fail, bookmark, close-watches).
  bool Control(const std::string& name, const std::string& body = "{}") const;
  // The requests answered so far, as the stand-in's JSON list.
  std::string Requests() const;
  Subprocess& process() { return *process_; }

 private:
  KubeStandin() : dir_("kube-standin") {}

  TempDir dir_;
  std::string ca_pem_, ca_path_, token_path_, token_;
  int port_ = 0;
  std::unique_ptr<controlplane::HttpsClient> client_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_SUPPORT_KUBE_STANDIN_H_
