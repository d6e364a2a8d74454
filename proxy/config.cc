#include "proxy/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/spiffe_id.h"
#include "google/protobuf/util/json_util.h"
#include "proxy/mesh_policy.h"
#include "tandem/proxy_config.pb.h"

namespace tandem::proxy {
namespace {

// Linux's default per-process descriptor ceiling (fs.nr_open): no more connections
// can be open at once, and larger values would overflow the int the workers count in.
constexpr uint32_t kMaxConnectionsLimit = 1 << 20;

// Whether this kernel can make IPv6 sockets (not booted with ipv6.disable=1), probed
// once: the listeners' default wildcard is [::] then, else 0.0.0.0.
bool KernelHasIpv6() {
  static const bool has = [] {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    close(fd);
    return true;
  }();
  return has;
}

absl::Status FieldError(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config field ", field, ": ", what));
}

}  // namespace

SocketAddress AppAddress(const ProxyOptions& options, const SocketAddress& destination) {
  if (options.has_fixed_app) return options.fixed_app;
  SocketAddress app = options.app_host;
  if (app.length == 0) {
    app = *SocketAddress::Parse(destination.family() == AF_INET6 ? "[::1]:0"
                                                                 : "127.0.0.1:0");
  }
  app.set_port(destination.port());
  return app;
}

absl::StatusOr<ProxyOptions> ParseProxyConfig(const std::string& json) {
  config::ProxyConfig pb;
  google::protobuf::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = false;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &pb, parse_options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", std::string(parsed.message())));
  }
  ProxyOptions o;
  if (!pb.trust_domain().empty()) o.trust_domain = pb.trust_domain();
  if (absl::Status s = SpiffeId::ValidateTrustDomain(o.trust_domain); !s.ok()) {
    return FieldError("trust_domain", std::string(s.message()));
  }
  struct AddressField {
    const char* name;
    const std::string& value;
    std::string fallback;
    SocketAddress* out;
  };
  const std::string any = KernelHasIpv6() ? "[::]" : "0.0.0.0";
  for (const AddressField& f :
       {AddressField{"outbound_address", pb.outbound_address(), any + ":15001",
                     &o.outbound},
        AddressField{"inbound_address", pb.inbound_address(), any + ":15006", &o.inbound},
        AddressField{"admin_address", pb.admin_address(), "127.0.0.1:15000", &o.admin},
        AddressField{"metrics_address", pb.metrics_address(), any + ":15090", &o.metrics},
        AddressField{"health_address", pb.health_address(), any + ":15021", &o.health}}) {
    absl::StatusOr<SocketAddress> a =
        SocketAddress::Parse(f.value.empty() ? f.fallback : f.value);
    if (!a.ok()) return FieldError(f.name, std::string(a.status().message()));
    *f.out = *a;
  }
  // Admin endpoints change state (drain, quit, log level): loopback only.
  bool loopback =
      (o.admin.family() == AF_INET &&
       (ntohl(reinterpret_cast<sockaddr_in*>(&o.admin.storage)->sin_addr.s_addr) >> 24) ==
           127) ||
      (o.admin.family() == AF_INET6 &&
       IN6_IS_ADDR_LOOPBACK(
           &reinterpret_cast<sockaddr_in6*>(&o.admin.storage)->sin6_addr));
  if (!loopback) return FieldError("admin_address", "must be a loopback address");
  // Range-checked before the cast: a uint32 above INT_MAX would turn negative.
  if (pb.workers() > 256) return FieldError("workers", "must be at most 256");
  o.workers = pb.workers()
                  ? static_cast<int>(pb.workers())
                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!pb.app_host().empty()) {
    const std::string& host = pb.app_host();
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(absl::StrCat(
        host.find(':') == std::string::npos || host[0] == '[' ? host : "[" + host + "]",
        ":0"));
    if (!a.ok()) return FieldError("app_host", "must be an IP address");
    o.app_host = *a;
    o.app_host.text = host;  // as written, for the effective config
  }
  if (!pb.outbound_fixed_destination().empty()) {
    absl::StatusOr<SocketAddress> a =
        SocketAddress::Parse(pb.outbound_fixed_destination());
    if (!a.ok()) {
      return FieldError("outbound_fixed_destination", std::string(a.status().message()));
    }
    o.has_fixed_destination = true;
    o.fixed_destination = *a;
  }
  if (!pb.inbound_fixed_app().empty()) {
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(pb.inbound_fixed_app());
    if (!a.ok())
      return FieldError("inbound_fixed_app", std::string(a.status().message()));
    o.has_fixed_app = true;
    o.fixed_app = *a;
  }
  absl::StatusOr<MeshRules> rules = MeshRulesFromConfig(pb, o.trust_domain);
  if (!rules.ok()) return rules.status();
  o.policy = *std::move(rules);
  if (pb.has_socket_mark()) o.socket_mark = pb.socket_mark();
  if (pb.max_connections() > kMaxConnectionsLimit) {
    return FieldError("max_connections",
                      absl::StrCat("must be at most ", kMaxConnectionsLimit));
  }
  if (pb.max_connections()) o.max_connections = static_cast<int>(pb.max_connections());
  if (pb.buffer_bytes()) {
    if (pb.buffer_bytes() < 4096 || pb.buffer_bytes() > (16u << 20)) {
      return FieldError("buffer_bytes", "must be between 4096 and 16777216");
    }
    o.buffer_bytes = pb.buffer_bytes();
  }
  struct TimeoutField {
    const char* name;
    uint32_t ms;
    absl::Duration* out;
  };
  for (const TimeoutField& t :
       {TimeoutField{"connect_timeout_ms", pb.connect_timeout_ms(), &o.connect_timeout},
        TimeoutField{"handshake_timeout_ms", pb.handshake_timeout_ms(),
                     &o.handshake_timeout},
        TimeoutField{"idle_timeout_ms", pb.idle_timeout_ms(), &o.idle_timeout},
        TimeoutField{"drain_timeout_ms", pb.drain_timeout_ms(), &o.drain_timeout}}) {
    if (t.ms == 0) continue;
    if (t.ms < 10) return FieldError(t.name, "must be at least 10 ms");
    *t.out = absl::Milliseconds(t.ms);
  }
  o.allow_tls12 = pb.allow_tls12();
  o.access_log = pb.access_log();
  o.cert_chain_file = pb.cert_chain_file();
  o.private_key_file = pb.private_key_file();
  o.trust_bundle_file = pb.trust_bundle_file();
  o.sds_socket = pb.sds_socket();
  int files = !o.cert_chain_file.empty() + !o.private_key_file.empty() +
              !o.trust_bundle_file.empty();
  if (files != 0 && files != 3) {
    return FieldError("cert_chain_file/private_key_file/trust_bundle_file",
                      "set all three or none");
  }
  if (files == 3 && !o.sds_socket.empty()) {
    return FieldError("sds_socket", "choose PEM files or SDS, not both");
  }
  o.policy_from_agent = pb.policy_from_agent();
  if (o.policy_from_agent && o.sds_socket.empty()) {
    return FieldError("policy_from_agent", "needs sds_socket (the agent's socket)");
  }
  return o;
}

}  // namespace tandem::proxy
