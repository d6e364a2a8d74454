#include "controlplane/revocation/revocation_admin.h"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "controlplane/policy/yaml_reader.h"

namespace tandem::controlplane {
namespace {

http::HttpResponse Reply(int status, std::string body, std::string type = "text/plain") {
  return http::HttpResponse{status, std::move(type), std::move(body)};
}

http::HttpResponse BadRequest(const absl::Status& status) {
  return Reply(400, absl::StrCat("error: ", status.message(), "\n"));
}

std::string ToJson(const tandem::policy::v1::Revocation& entry) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(entry, &json, options);
  return json;
}

struct RevokeRequest {
  std::string serial;
  std::string not_after;
  std::string spiffe_id;
  std::string reason;
};

// Parses the JSON body; errors name the field ("request:1: serial: ...").
absl::StatusOr<RevokeRequest> ParseRevokeRequest(const std::string& body) {
  YamlReader reader("request");
  absl::StatusOr<YAML::Node> root = reader.Load(body);
  if (!root.ok()) return root.status();
  auto fields =
      reader.Mapping(*root, "", 1, {"serial", "not_after", "spiffe_id", "reason"});
  if (!fields.ok()) return fields.status();
  RevokeRequest request;
  for (const YamlReader::Field& f : *fields) {
    absl::StatusOr<std::string> value = reader.String(f.value, f.key, f.line);
    if (!value.ok()) return value.status();
    (f.key == "serial"      ? request.serial
     : f.key == "not_after" ? request.not_after
     : f.key == "spiffe_id" ? request.spiffe_id
                            : request.reason) = *std::move(value);
  }
  if (request.serial.empty() == request.spiffe_id.empty()) {
    return reader.Error(1, "(request)",
                        "give either serial (with not_after) or spiffe_id");
  }
  if (!request.serial.empty() && request.not_after.empty()) {
    return reader.Error(1, "not_after", "required with serial (RFC 3339)");
  }
  if (!request.spiffe_id.empty() && !request.not_after.empty()) {
    return reader.Error(1, "not_after",
                        "only with serial (an identity's revocation "
                        "lasts the CA's maximum TTL)");
  }
  return request;
}

}  // namespace

absl::StatusOr<LoopbackAddress> ParseLoopbackAddress(absl::string_view address) {
  size_t colon = address.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin address \"", address, "\" is not host:port (e.g. 127.0.0.1:15010)"));
  }
  std::string host(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  unsigned char bytes[16];
  bool loopback = false;
  if (inet_pton(AF_INET, host.c_str(), bytes) == 1) {
    loopback = bytes[0] == 127;
  } else if (inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    loopback = host == "::1" ||
               (bytes[15] == 1 &&
                std::all_of(bytes, bytes + 15, [](unsigned char b) { return b == 0; }));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("admin address \"", address, "\" has no IP address"));
  }
  if (!loopback) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin address \"", address,
        "\" is not loopback: the admin endpoint has no authentication, so it listens "
        "only on 127.0.0.0/8 or ::1"));
  }
  return LoopbackAddress{host, static_cast<uint16_t>(port)};
}

absl::StatusOr<std::unique_ptr<RevocationAdmin>> RevocationAdmin::Create(
    Options options) {
  absl::StatusOr<LoopbackAddress> address = ParseLoopbackAddress(options.address);
  if (!address.ok()) return address.status();
  http::HttpServer::Options http;
  http.address = address->host;
  http.port = address->port;
  http.name = "admin";
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Create(std::move(http));
  if (!server.ok()) return server.status();
  std::unique_ptr<RevocationAdmin> admin(
      new RevocationAdmin(std::move(options), *std::move(server)));
  RevocationAdmin* self = admin.get();
  if (admin->options_.revocations != nullptr) {
    admin->server_->Handle(
        "/revoke", [self](const http::HttpRequest& r) { return self->Revoke(r); });
    admin->server_->Handle("/revocations",
                           [self](const http::HttpRequest& r) { return self->List(r); });
  }
  return admin;
}

RevocationAdmin::RevocationAdmin(Options options,
                                 std::unique_ptr<http::HttpServer> server)
    : options_(std::move(options)), server_(std::move(server)) {}

void RevocationAdmin::Handle(std::string path, http::HttpServer::Handler handler) {
  server_->Handle(std::move(path), std::move(handler));
}

absl::Status RevocationAdmin::Start() { return server_->Start(); }
void RevocationAdmin::Stop() { server_->Stop(); }

http::HttpResponse RevocationAdmin::Revoke(const http::HttpRequest& request) {
  if (request.method != "POST") return Reply(405, "use POST\n");
  absl::StatusOr<RevokeRequest> parsed = ParseRevokeRequest(request.body);
  if (!parsed.ok()) return BadRequest(parsed.status());
  const bool close =
      options_.policy != nullptr && options_.policy->current()->close_open_connections();
  const absl::Time now = absl::Now();
  absl::StatusOr<tandem::policy::v1::Revocation> entry;
  if (!parsed->serial.empty()) {
    absl::Time not_after;
    std::string why;
    if (!absl::ParseTime(absl::RFC3339_full, parsed->not_after, &not_after, &why)) {
      return BadRequest(absl::InvalidArgumentError(absl::StrCat(
          "not_after \"", parsed->not_after, "\" is not RFC 3339 (", why, ")")));
    }
    entry = options_.revocations->RevokeSerial(parsed->serial, not_after, parsed->reason,
                                               close, now);
  } else {
    entry = options_.revocations->RevokeSpiffeId(parsed->spiffe_id, parsed->reason, close,
                                                 now);
  }
  if (!entry.ok()) {
    if (entry.status().code() == absl::StatusCode::kInvalidArgument) {
      return BadRequest(absl::InvalidArgumentError(
          absl::StrCat(parsed->serial.empty() ? "spiffe_id" : "serial", ": ",
                       entry.status().message())));
    }
    return Reply(500, absl::StrCat("error: ", entry.status().message(), "\n"));
  }
  log::Warn("ca", "revoked", {{"entry", ToJson(*entry)}});
  return Reply(200, ToJson(*entry) + "\n", "application/json");
}

http::HttpResponse RevocationAdmin::List(const http::HttpRequest& request) const {
  if (request.method != "GET") return Reply(405, "use GET\n");
  std::string body = "{\"revocations\":[";
  bool first = true;
  for (const auto& entry : options_.revocations->Live(absl::Now())) {
    absl::StrAppend(&body, first ? "" : ",", ToJson(entry));
    first = false;
  }
  absl::StrAppend(&body, "]}\n");
  return Reply(200, std::move(body), "application/json");
}

}  // namespace tandem::controlplane
