// BoringSSL code: never include gRPC headers here.
#include "tandemctl/tls_probe.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/tcp_connect.h"

namespace tandem::tandemctl {
namespace {

std::string SslErrorText() {
  uint32_t e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "connection closed by the peer";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// "host:port" (IPv6 as [addr]:port) into ConnectTcp's parts.
absl::StatusOr<int> Connect(const std::string& address, absl::Time deadline) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return ConnectTcp(host, address.substr(colon + 1), deadline);
}

}  // namespace

absl::StatusOr<TlsProbeResult> ProbeTls(const std::string& address,
                                        const std::string& alpn, absl::Duration timeout) {
  absl::StatusOr<int> fd = Connect(address, absl::Now() + timeout);
  if (!fd.ok()) return fd.status();
  absl::Cleanup close_fd = [fd = *fd] { close(fd); };
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION)) {
    return absl::InternalError("cannot make a TLS context");
  }
  // Verified by the caller against the roots it is asked about.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  if (!ssl) return absl::InternalError("cannot make a TLS connection");
  if (!alpn.empty()) {
    std::string wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const uint8_t*>(wire.data()),
                        wire.size());
  }
  SSL_set_fd(ssl.get(), *fd);
  if (SSL_connect(ssl.get()) != 1) {
    return absl::UnavailableError(
        absl::StrCat("TLS handshake with ", address, " failed: ", SslErrorText()));
  }
  TlsProbeResult result;
  const uint8_t* selected = nullptr;
  unsigned selected_size = 0;
  SSL_get0_alpn_selected(ssl.get(), &selected, &selected_size);
  result.alpn.assign(reinterpret_cast<const char*>(selected), selected_size);
  // A client's view of the peer chain includes the leaf.
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get())) {
    for (size_t i = 0; i < sk_X509_num(chain); ++i) {
      result.chain.push_back(pki::Certificate::FromX509(sk_X509_value(chain, i)));
    }
  }
  SSL_shutdown(ssl.get());
  if (result.chain.empty()) {
    return absl::UnavailableError(absl::StrCat(address, " sent no certificate"));
  }
  return result;
}

}  // namespace tandem::tandemctl
