#include "tests/support/kube_standin.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/pki/certificate_authority.h"
#include "common/spiffe_id.h"
#include "gtest/gtest.h"

namespace tandem::testing {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

}  // namespace

std::unique_ptr<KubeStandin> KubeStandin::Start(Options options) {
  std::unique_ptr<KubeStandin> standin(new KubeStandin());
  const std::string& dir = standin->dir_.path();
  absl::StatusOr<pki::CertificateAuthority> ca =
      pki::CertificateAuthority::CreateRoot({}, absl::Now());
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload("cluster.local", "default", "kube-apiserver");
  if (!ca.ok() || !key.ok() || !id.ok()) {
    ADD_FAILURE() << "cannot make the stand-in's certificate";
    return nullptr;
  }
  absl::StatusOr<pki::Certificate> cert =
      ca->IssueServer(*key, *id, {"kubernetes.default.svc", "localhost"}, {"127.0.0.1"},
                      absl::Hours(1), absl::Now());
  absl::StatusOr<std::string> key_pem = key->ToPem();
  if (!cert.ok() || !key_pem.ok()) {
    ADD_FAILURE() << "cannot issue the stand-in's certificate";
    return nullptr;
  }
  standin->ca_pem_ = ca->root().ToPem();
  standin->ca_path_ = dir + "/ca.crt";
  standin->token_path_ = dir + "/token";
  WriteFile(standin->ca_path_, standin->ca_pem_);
  WriteFile(dir + "/server.crt", cert->ToPem());
  WriteFile(dir + "/server.key", *key_pem);
  standin->SetToken("token-1");
  standin->process_ = std::make_unique<Subprocess>(
      "kube-api-standin",
      std::vector<std::string>{
          TANDEM_PYTHON, TANDEM_KUBE_STANDIN, "--cert=" + dir + "/server.crt",
          "--key=" + dir + "/server.key", "--token-file=" + standin->token_path_,
          absl::StrCat("--bookmark-interval=", options.bookmark_interval_seconds),
          "--namespaces=" + absl::StrJoin(options.namespaces, ",")},
      dir + "/standin.log");
  if (!standin->process_->Start()) {
    ADD_FAILURE() << "cannot start the API-server stand-in";
    return nullptr;
  }
  standin->port_ = WaitForLoggedPort(*standin->process_, "listening on ");
  if (standin->port_ == 0) {
    ADD_FAILURE() << "the API-server stand-in did not start:\n"
                  << standin->process_->Log();
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<controlplane::HttpsClient>> client =
      controlplane::HttpsClient::Create(
          {standin->address(), standin->ca_pem_, "", absl::Seconds(5)});
  if (!client.ok()) {
    ADD_FAILURE() << client.status();
    return nullptr;
  }
  standin->client_ = *std::move(client);
  return standin;
}

controlplane::KubeClient::Options KubeStandin::ClientOptions() const {
  controlplane::KubeClient::Options options;
  options.api_server = address();
  options.ca_pem = ca_pem_;
  options.token_path = token_path_;
  return options;
}

std::string KubeStandin::address() const { return absl::StrCat("127.0.0.1:", port_); }

void KubeStandin::SetToken(const std::string& token) {
  // Replaced whole (rename), as the kubelet swaps a projected token.
  WriteFile(token_path_ + ".new", token);
  std::rename((token_path_ + ".new").c_str(), token_path_.c_str());
  token_ = token;
}

absl::StatusOr<controlplane::HttpsResponse> KubeStandin::Call(
    const std::string& method, const std::string& path, const std::string& body) const {
  return client_->Send(method, path, method == "GET" ? "" : "application/json", body,
                       {{"Authorization", "Bearer " + token_}});
}

bool KubeStandin::Control(const std::string& name, const std::string& body) const {
  absl::StatusOr<controlplane::HttpsResponse> r =
      client_->Send("POST", "/_test/" + name, "application/json", body, {});
  return r.ok() && r->status == 200;
}

std::string KubeStandin::Requests() const {
  absl::StatusOr<controlplane::HttpsResponse> r =
      client_->Send("GET", "/_test/requests", "", "", {});
  return r.ok() ? r->body : "";
}

}  // namespace tandem::testing
