#include "proxy/socket_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::proxy {

absl::StatusOr<SocketAddress> SocketAddress::Parse(const std::string& host_port) {
  SocketAddress out;
  out.text = host_port;
  std::string host, port_text;
  if (!host_port.empty() && host_port[0] == '[') {
    size_t close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return absl::InvalidArgumentError("expected [ipv6]:port");
    }
    host = host_port.substr(1, close - 1);
    port_text = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string::npos)
      return absl::InvalidArgumentError("expected host:port");
    host = host_port.substr(0, colon);
    port_text = host_port.substr(colon + 1);
  }
  uint32_t port;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port \"", port_text, "\""));
  }
  if (host == "localhost") host = "127.0.0.1";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", host, "\" is not an IP address (names are not resolved)"));
  }
  return out;
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress out;
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6) &&
      IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr)) {
    const auto* mapped = reinterpret_cast<const sockaddr_in6*>(sa);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = mapped->sin6_port;
    std::memcpy(&v4->sin_addr, &mapped->sin6_addr.s6_addr[12], 4);
    return FromSockaddr(reinterpret_cast<const sockaddr*>(v4), sizeof(sockaddr_in));
  }
  std::memcpy(&out.storage, sa, std::min<size_t>(len, sizeof(out.storage)));
  out.length = len;
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host,
              sizeof(host));
    out.text = absl::StrCat(host, ":", out.port());
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host,
              sizeof(host));
    out.text = absl::StrCat("[", host, "]:", out.port());
  }
  return out;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  }
  *this = FromSockaddr(get(), length);  // the text follows
}

bool SocketAddress::is_wildcard() const {
  if (family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr ==
           htonl(INADDR_ANY);
  }
  return family() == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(
             &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr);
}

absl::StatusOr<Cidr> Cidr::Parse(const std::string& text) {
  Cidr cidr;
  cidr.text = text;
  size_t slash = text.find('/');
  std::string host = text.substr(0, slash);
  if (inet_pton(AF_INET, host.c_str(), cidr.bytes) == 1) {
    cidr.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), cidr.bytes) == 1) {
    cidr.family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a CIDR"));
  }
  int max = cidr.family == AF_INET ? 32 : 128;
  cidr.prefix = max;
  if (slash != std::string::npos &&
      (!absl::SimpleAtoi(text.substr(slash + 1), &cidr.prefix) || cidr.prefix < 0 ||
       cidr.prefix > max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" has a bad prefix length"));
  }
  return cidr;
}

bool Cidr::Contains(const SocketAddress& address) const {
  if (address.family() != family) return false;
  const uint8_t* addr =
      family == AF_INET
          ? reinterpret_cast<const uint8_t*>(
                &reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_addr)
          : reinterpret_cast<const uint8_t*>(
                &reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_addr);
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(addr, bytes, full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == (bytes[full] & mask);
}

}  // namespace tandem::proxy
