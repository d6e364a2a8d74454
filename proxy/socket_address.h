#ifndef TANDEM_PROXY_SOCKET_ADDRESS_H_
#define TANDEM_PROXY_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tandem::proxy {

// A parsed "host:port" or "[v6]:port".
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;

  static absl::StatusOr<SocketAddress> Parse(const std::string& host_port);
  // An IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4 peer)
  // becomes the plain IPv4 address, so CIDRs, policies and logs see one form.
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t len);
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  bool is_wildcard() const;  // 0.0.0.0 or ::
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// A CIDR block, IPv4 or IPv6.
struct Cidr {
  int family = AF_INET;
  uint8_t bytes[16] = {};
  int prefix = 0;
  std::string text;  // as written
  static absl::StatusOr<Cidr> Parse(const std::string& text);
  bool Contains(const SocketAddress& address) const;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SOCKET_ADDRESS_H_
