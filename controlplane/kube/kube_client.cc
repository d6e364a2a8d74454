#include "controlplane/kube/kube_client.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"

namespace tandem::controlplane {

std::string WithQuery(const std::string& path, absl::string_view param) {
  return absl::StrCat(path, path.find('?') == std::string::npos ? "?" : "&", param);
}

absl::Status StatusFromHttp(const HttpsResponse& response, absl::string_view what) {
  std::string detail;
  std::string reason;
  if (absl::StatusOr<nlohmann::json> status = ParseKubeObject(response.body);
      status.ok()) {
    auto message = status->find("message");
    if (message != status->end() && message->is_string()) {
      detail = absl::StrCat(": ", message->get<std::string>().substr(0, 512));
    }
    auto r = status->find("reason");
    if (r != status->end() && r->is_string()) reason = r->get<std::string>();
  }
  std::string text = absl::StrCat(what, ": HTTP ", response.status, detail);
  switch (response.status) {
    case 404:
      return absl::NotFoundError(text);
    case 409:
      return reason == "AlreadyExists" ? absl::AlreadyExistsError(text)
                                       : absl::AbortedError(text);
    case 410:
      return absl::OutOfRangeError(text);
    case 401:
    case 403:
      return absl::PermissionDeniedError(text);
    default:
      return absl::UnavailableError(text);
  }
}

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Create(Options options) {
  if (options.token_path.empty() && options.token.empty()) {
    return absl::InvalidArgumentError("Kubernetes API: no token (file) for our identity");
  }
  HttpsClient::Options http;
  http.address = options.api_server;
  http.ca_pem = options.ca_pem;
  http.server_name = options.server_name;
  http.timeout = options.timeout;
  http.max_response_bytes = options.max_response_bytes;
  absl::StatusOr<std::unique_ptr<HttpsClient>> client = HttpsClient::Create(http);
  if (!client.ok()) return client.status();
  return std::unique_ptr<KubeClient>(
      new KubeClient(std::move(options), *std::move(client)));
}

KubeClient::KubeClient(Options options, std::unique_ptr<HttpsClient> http)
    : options_(std::move(options)), http_(std::move(http)) {}

absl::StatusOr<std::string> KubeClient::Token(bool force) const {
  if (options_.token_path.empty()) return options_.token;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (force || now - token_read_at_ >= options_.token_refresh) {
    absl::StatusOr<std::string> read = ReadFileToString(options_.token_path);
    token_reads_.fetch_add(1);
    if (!read.ok()) {
      return absl::NotFoundError(absl::StrCat(
          "service-account token ", options_.token_path, ": ", read.status().message()));
    }
    token_ = std::string(absl::StripAsciiWhitespace(*read));
    token_read_at_ = now;
  }
  return token_;
}

std::vector<std::pair<std::string, std::string>> KubeClient::AuthHeader(
    const std::string& token) const {
  return {{"Authorization", absl::StrCat("Bearer ", token)}};
}

absl::StatusOr<HttpsResponse> KubeClient::Call(const std::string& method,
                                               const std::string& path,
                                               const std::string& body) const {
  for (bool retried : {false, true}) {
    absl::StatusOr<std::string> token = Token(/*force=*/retried);
    if (!token.ok()) return token.status();
    const bool has_body = method != "GET" && method != "DELETE";
    absl::StatusOr<HttpsResponse> response =
        has_body ? http_->Send(method, path, "application/json", body, AuthHeader(*token))
                 : http_->Send(method, path, "", "", AuthHeader(*token));
    // A 401 with a token from a file: the kubelet may have rotated it since we read it.
    if (!response.ok() || response->status != 401 || options_.token_path.empty() ||
        retried) {
      return response;
    }
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<KubeClient::ObjectList> KubeClient::List(
    const std::string& collection) const {
  absl::StatusOr<HttpsResponse> response = Call("GET", collection);
  if (!response.ok()) return response.status();
  if (response->status != 200) return StatusFromHttp(*response, "LIST " + collection);
  absl::StatusOr<nlohmann::json> list = ParseKubeObject(response->body);
  if (!list.ok()) {
    return absl::UnavailableError(
        absl::StrCat("LIST ", collection, ": ", list.status().message()));
  }
  ObjectList result;
  result.resource_version = MetadataField(*list, "resourceVersion");
  auto items = list->find("items");
  if (result.resource_version.empty() ||
      (items != list->end() && !items->is_array() && !items->is_null())) {
    return absl::UnavailableError(
        absl::StrCat("LIST ", collection, ": not a list with a resourceVersion"));
  }
  if (items != list->end() && items->is_array()) {
    for (nlohmann::json& item : *items) {
      if (!item.is_object() || MetadataField(item, "name").empty()) {
        return absl::UnavailableError(
            absl::StrCat("LIST ", collection, ": an item without metadata.name"));
      }
      result.items.push_back(std::move(item));
    }
  }
  return result;
}

absl::Status KubeClient::Watch(
    const std::string& collection, const std::string& resource_version,
    absl::Duration timeout, const std::atomic<bool>* cancelled,
    const std::function<bool(const WatchEvent&)>& on_event) const {
  std::string path = WithQuery(collection, "watch=1");
  path = WithQuery(path, "allowWatchBookmarks=true");
  path = WithQuery(path, absl::StrCat("resourceVersion=", resource_version));
  path = WithQuery(path, absl::StrCat("timeoutSeconds=", absl::ToInt64Seconds(timeout)));
  for (bool retried : {false, true}) {
    absl::StatusOr<std::string> token = Token(/*force=*/retried);
    if (!token.ok()) return token.status();
    int http_status = 0;
    std::string error_body;  // the body of a non-200 answer
    WatchEventParser parser(options_.max_response_bytes);
    std::vector<WatchEvent> events;
    absl::Status result;  // set by the handlers when they stop the stream
    HttpsClient::StreamHandlers handlers;
    handlers.cancelled = cancelled;
    // Bookmarks come about every minute; a longer silence past the server's own
    // timeout means a dead connection.
    handlers.idle_timeout = timeout + absl::Seconds(30);
    handlers.on_head = [&](int status) {
      http_status = status;
      return true;
    };
    handlers.on_body = [&](absl::string_view bytes) {
      if (http_status != 200) {
        if (error_body.size() < 64 * 1024) error_body.append(bytes.data(), bytes.size());
        return true;
      }
      events.clear();
      if (absl::Status s = parser.Feed(bytes, &events); !s.ok()) {
        result =
            absl::UnavailableError(absl::StrCat("WATCH ", collection, ": ", s.message()));
        return false;
      }
      for (const WatchEvent& event : events) {
        if (event.type == WatchEvent::Type::kError) {
          std::string text =
              absl::StrCat("WATCH ", collection, ": ERROR event ", event.code, " ",
                           event.reason, ": ", event.message);
          result = event.code == 410 ? absl::OutOfRangeError(text)
                                     : absl::UnavailableError(text);
          return false;
        }
        if (!on_event(event)) return false;
      }
      return true;
    };
    absl::Status streamed = http_->Stream(path, AuthHeader(*token), handlers);
    if (!result.ok()) return result;
    if (http_status == 401 && !options_.token_path.empty() && !retried) continue;
    if (http_status != 0 && http_status != 200) {
      return StatusFromHttp({http_status, error_body}, "WATCH " + collection);
    }
    if (!streamed.ok()) {
      return absl::Status(streamed.code(),
                          absl::StrCat("WATCH ", collection, ": ", streamed.message()));
    }
    return absl::OkStatus();
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<nlohmann::json> KubeClient::Update(const std::string& collection,
                                                  const std::string& name,
                                                  const Edit& edit,
                                                  int max_conflicts) const {
  const std::string path = absl::StrCat(collection, "/", name);
  for (int attempt = 0; attempt < max_conflicts; ++attempt) {
    absl::StatusOr<HttpsResponse> got = Call("GET", path);
    if (!got.ok()) return got.status();
    nlohmann::json object;  // null: absent
    if (got->status == 200) {
      absl::StatusOr<nlohmann::json> parsed = ParseKubeObject(got->body);
      if (!parsed.ok()) {
        return absl::UnavailableError(
            absl::StrCat("GET ", path, ": ", parsed.status().message()));
      }
      object = *std::move(parsed);
    } else if (got->status != 404) {
      return StatusFromHttp(*got, "GET " + path);
    }
    const bool exists = !object.is_null();
    nlohmann::json edited = object;
    absl::StatusOr<bool> changed = edit(&edited);
    if (!changed.ok()) return changed.status();
    if (!*changed) return object;
    if (!edited.is_object()) return absl::InternalError("edit left no object to write");
    edited["metadata"]["name"] = name;
    const std::string body =
        edited.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    absl::StatusOr<HttpsResponse> wrote =
        exists ? Call("PUT", path, body) : Call("POST", collection, body);
    if (!wrote.ok()) return wrote.status();
    if (wrote->status == 200 || wrote->status == 201) {
      absl::StatusOr<nlohmann::json> stored = ParseKubeObject(wrote->body);
      if (!stored.ok()) {
        return absl::UnavailableError(absl::StrCat(exists ? "PUT " : "POST ", path, ": ",
                                                   stored.status().message()));
      }
      return *std::move(stored);
    }
    // 409: changed (PUT) or created (POST) by someone else since our GET: start again
    // from a fresh copy.
    if (wrote->status != 409) {
      return StatusFromHttp(*wrote, absl::StrCat(exists ? "PUT " : "POST ", path));
    }
  }
  return absl::AbortedError(absl::StrCat("update ", path, ": still conflicting after ",
                                         max_conflicts, " attempts"));
}

}  // namespace tandem::controlplane
