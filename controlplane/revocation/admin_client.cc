#include "controlplane/revocation/admin_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/pki/certificate.h"
#include "controlplane/revocation/revocation_admin.h"

namespace tandem::controlplane {
namespace {

constexpr size_t kMaxReplyBytes = 1 << 20;

std::string JsonQuote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, static_cast<char>(c)));
    } else if (c < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

std::string WithReason(std::string fields, const std::string& reason) {
  if (!reason.empty()) absl::StrAppend(&fields, ",\"reason\":", JsonQuote(reason));
  return absl::StrCat("{", fields, "}");
}

}  // namespace

absl::StatusOr<AdminClient::Reply> AdminClient::Call(const std::string& address,
                                                     const std::string& method,
                                                     const std::string& path,
                                                     const std::string& body,
                                                     absl::Duration timeout) {
  absl::StatusOr<LoopbackAddress> target = ParseLoopbackAddress(address);
  if (!target.ok()) return target.status();
  sockaddr_storage storage{};
  socklen_t length;
  int family;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      inet_pton(AF_INET, target->host.c_str(), &v4->sin_addr) == 1) {
    family = v4->sin_family = AF_INET;
    v4->sin_port = htons(target->port);
    length = sizeof(*v4);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    inet_pton(AF_INET6, target->host.c_str(), &v6->sin6_addr);
    family = v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(target->port);
    length = sizeof(*v6);
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  absl::Cleanup close_fd = [fd] { close(fd); };
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", address, ": ", std::strerror(errno)));
  }
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", address,
                                     "\r\nContent-Type: application/json\r\n"
                                     "Content-Length: ",
                                     body.size(), "\r\nConnection: close\r\n\r\n", body);
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[4096];
  while (response.size() < kMaxReplyBytes) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
    if (n == 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  Reply reply;
  size_t space = response.find(' ');
  size_t header_end = response.find("\r\n\r\n");
  if (space == std::string::npos || header_end == std::string::npos ||
      !absl::SimpleAtoi(response.substr(space + 1, 3), &reply.status)) {
    return absl::DataLossError(absl::StrCat("garbled reply from ", address));
  }
  reply.body = response.substr(header_end + 4);
  return reply;
}

absl::StatusOr<std::string> AdminClient::RevokeCertificateBody(
    const std::string& pem, const std::string& reason) {
  absl::StatusOr<std::vector<pki::Certificate>> chain =
      pki::Certificate::ChainFromPem(pem);
  if (!chain.ok()) return chain.status();
  const pki::Certificate& leaf = chain->front();  // a chain file: the leaf comes first
  return RevokeSerialBody(
      leaf.SerialHex(),
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", leaf.not_after(), absl::UTCTimeZone()),
      reason);
}

std::string AdminClient::RevokeSerialBody(const std::string& serial_hex,
                                          const std::string& not_after_rfc3339,
                                          const std::string& reason) {
  return WithReason(absl::StrCat("\"serial\":", JsonQuote(serial_hex),
                                 ",\"not_after\":", JsonQuote(not_after_rfc3339)),
                    reason);
}

std::string AdminClient::RevokeSpiffeIdBody(const std::string& spiffe_id,
                                            const std::string& reason) {
  return WithReason(absl::StrCat("\"spiffe_id\":", JsonQuote(spiffe_id)), reason);
}

}  // namespace tandem::controlplane
