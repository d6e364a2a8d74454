#include "controlplane/auth/token_review_authenticator.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "controlplane/auth/refusal_reason.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace tandem::controlplane {
namespace {

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr char kPath[] = "/apis/authentication.k8s.io/v1/tokenreviews";

const google::protobuf::Value* Field(const google::protobuf::Struct& s,
                                     const std::string& k) {
  auto it = s.fields().find(k);
  return it == s.fields().end() ? nullptr : &it->second;
}

const google::protobuf::Struct* Object(const google::protobuf::Struct& s,
                                       const std::string& k) {
  const google::protobuf::Value* v = Field(s, k);
  return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
}

std::string String(const google::protobuf::Struct* s, const std::string& k) {
  const google::protobuf::Value* v = s ? Field(*s, k) : nullptr;
  return v != nullptr && v->has_string_value() ? v->string_value() : std::string();
}

absl::Status Unavailable(absl::string_view why) {
  return WithRefusalReason(
      absl::UnavailableError(absl::StrCat("TokenReview failed: ", why)),
      "token_review_unavailable");
}

}  // namespace

absl::StatusOr<TokenReviewAuthenticator::Options>
TokenReviewAuthenticator::InClusterOptions() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return absl::FailedPreconditionError(
        "not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set");
  }
  absl::StatusOr<std::string> ca = ReadFileToString(kInClusterCaPath);
  if (!ca.ok()) return ca.status();
  Options options;
  std::string h = host;
  options.api_server =
      absl::StrCat(h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", port);
  // The API server's certificate always names kubernetes.default.svc; its service IP
  // may be missing from it on some distributions.
  options.server_name = "kubernetes.default.svc";
  options.ca_pem = *std::move(ca);
  options.credential_token_path = kInClusterTokenPath;
  return options;
}

TokenReviewAuthenticator::TokenReviewAuthenticator(Options options,
                                                   std::unique_ptr<HttpsClient> client)
    : options_(std::move(options)), client_(std::move(client)) {}
TokenReviewAuthenticator::~TokenReviewAuthenticator() = default;

absl::StatusOr<std::unique_ptr<TokenReviewAuthenticator>>
TokenReviewAuthenticator::Create(Options options) {
  if (options.credential_token_path.empty() && options.credential_token.empty()) {
    return absl::InvalidArgumentError("TokenReview: the CA's own token is required");
  }
  absl::StatusOr<std::unique_ptr<HttpsClient>> client = HttpsClient::Create(
      {options.api_server, options.ca_pem, options.server_name, options.timeout});
  if (!client.ok()) return client.status();
  return std::unique_ptr<TokenReviewAuthenticator>(
      new TokenReviewAuthenticator(std::move(options), *std::move(client)));
}

absl::StatusOr<ServiceAccount> TokenReviewAuthenticator::Authenticate(
    const std::string& token, absl::Time now) const {
  if (token.empty()) return TokenRefused("malformed_token", "empty");
  if (token.size() > kMaxTokenBytes) {
    return TokenRefused("malformed_token", "larger than 16 KiB");
  }
  std::string credential = options_.credential_token;
  if (!options_.credential_token_path.empty()) {
    absl::StatusOr<std::string> read = ReadFileToString(options_.credential_token_path);
    if (!read.ok()) return Unavailable(read.status().message());
    credential = std::string(absl::StripTrailingAsciiWhitespace(*read));
  }

  google::protobuf::Struct review;
  auto& f = *review.mutable_fields();
  f["apiVersion"].set_string_value("authentication.k8s.io/v1");
  f["kind"].set_string_value("TokenReview");
  auto& spec = *f["spec"].mutable_struct_value()->mutable_fields();
  spec["token"].set_string_value(token);
  if (!options_.audiences.empty()) {
    auto* list = spec["audiences"].mutable_list_value();
    for (const std::string& a : options_.audiences)
      list->add_values()->set_string_value(a);
  }
  std::string body;
  if (!google::protobuf::util::MessageToJsonString(review, &body).ok()) {
    return absl::InternalError("TokenReview encoding failed");
  }
  absl::StatusOr<HttpsResponse> response = client_->Post(
      kPath, "application/json", body, {{"Authorization", "Bearer " + credential}});
  if (!response.ok()) return Unavailable(response.status().message());
  if (response->status != 200 && response->status != 201) {
    return Unavailable(absl::StrCat("API server answered HTTP ", response->status));
  }
  google::protobuf::Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(response->body, &answer).ok()) {
    return Unavailable("answer is not JSON");
  }
  const google::protobuf::Struct* status = Object(answer, "status");
  const google::protobuf::Value* authenticated =
      status ? Field(*status, "authenticated") : nullptr;
  if (authenticated == nullptr || !authenticated->has_bool_value() ||
      !authenticated->bool_value()) {
    std::string error = String(status, "error");
    return TokenRefused("token_review_denied",
                        error.empty() ? "not authenticated by the API server" : error);
  }
  if (!options_.audiences.empty()) {
    bool audience_ok = false;
    const google::protobuf::Value* audiences = Field(*status, "audiences");
    if (audiences != nullptr && audiences->has_list_value()) {
      for (const auto& v : audiences->list_value().values()) {
        for (const std::string& a : options_.audiences) {
          audience_ok |= v.has_string_value() && v.string_value() == a;
        }
      }
    }
    if (!audience_ok) {
      return TokenRefused("wrong_audience", "the review names none of our audiences");
    }
  }
  std::string username = String(Object(*status, "user"), "username");
  std::vector<std::string> parts = absl::StrSplit(username, ':');
  if (parts.size() != 4 || parts[0] != "system" || parts[1] != "serviceaccount" ||
      parts[2].empty() || parts[3].empty()) {
    return TokenRefused("no_identity",
                        absl::StrCat("user \"", username, "\" is not a service account"));
  }
  return ServiceAccount{parts[2], parts[3]};
}

}  // namespace tandem::controlplane
