// Istio interop on the wire: what tandem's client puts in its ClientHello and what its
// server selects, pinned against the values in Istio's own source (cited in
// docs/istio-interop.md). Envoy is not packaged here, so a BoringSSL server in this
// test stands in for an istio-proxy inbound and openssl s_client for an istio-proxy
// outbound, each offering exactly Istio's lists.
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "proxy/proxy.h"
#include "proxy/tls_context_manager.h"
#include "tests/integration/loopback_server.h"
#include "tests/integration/openssl_cli.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/traffic.h"
#include "tests/support/pki_test_util.h"

namespace tandem::proxy {
namespace {

using pki::testing::MakeRoot;
using pki::testing::MakeWorkload;
using tandem::testing::EchoServer;

constexpr char kClientId[] = "spiffe://cluster.local/ns/a/sa/client";
constexpr char kServerId[] = "spiffe://cluster.local/ns/b/sa/server";

// Istio's lists (pilot/pkg/networking/util/util.go, pilot/pkg/xds/filters/filters.go;
// docs/istio-interop.md). The client lists are given to s_client below.
// ALPNDownstreamWithMxc: the ALPN an istio-proxy inbound serves on TCP mTLS chains.
const std::vector<std::string> kIstioServerTcp = {"istio-peer-exchange", "h2",
                                                  "http/1.1"};

WorkloadSecretPem ToPem(const pki::WorkloadCredentials& c) {
  return {*c.key.ToPem(), pki::Certificate::ChainToPem(c.chain), c.bundle.ToPem()};
}

// Returns ALPN protocol names in wire form (each prefixed by its length).
std::string AlpnWire(const std::vector<std::string>& names) {
  std::string wire;
  for (const std::string& name : names) {
    wire.push_back(static_cast<char>(name.size()));
    wire += name;
  }
  return wire;
}

std::unique_ptr<Proxy> StartProxy(const std::string& extra_json, int* outbound_port,
                                  int* inbound_port) {
  absl::StatusOr<ProxyOptions> options = ParseProxyConfig(absl::StrCat(
      "{\"outbound_address\": \"127.0.0.1:0\", \"inbound_address\": \"127.0.0.1:0\", "
      "\"workers\": 1, \"socket_mark\": 0, \"handshake_timeout_ms\": 2000",
      extra_json, "}"));
  EXPECT_TRUE(options.ok()) << options.status();
  absl::StatusOr<std::unique_ptr<Proxy>> proxy = Proxy::Create(*options);
  EXPECT_TRUE(proxy.ok()) << proxy.status();
  EXPECT_TRUE((*proxy)->Start().ok());
  *outbound_port = (*proxy)->options().outbound.port();
  *inbound_port = (*proxy)->options().inbound.port();
  return *std::move(proxy);
}

// What the stand-in istio-proxy inbound saw of one ClientHello and handshake.
struct SeenHandshake {
  absl::Mutex mu;
  std::string alpn_extension ABSL_GUARDED_BY(mu);  // the extension's body, raw
  std::string sigalgs_extension ABSL_GUARDED_BY(mu);
  std::string selected ABSL_GUARDED_BY(mu);  // the ALPN it negotiated
  bool completed ABSL_GUARDED_BY(mu) = false;
};

// Records the raw ALPN and signature_algorithms extensions of the ClientHello.
enum ssl_select_cert_result_t RecordClientHello(const SSL_CLIENT_HELLO* hello) {
  auto* seen =
      static_cast<SeenHandshake*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(hello->ssl)));
  const uint8_t* data;
  size_t len;
  absl::MutexLock lock(&seen->mu);
  if (SSL_early_callback_ctx_extension_get(
          hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len)) {
    seen->alpn_extension.assign(reinterpret_cast<const char*>(data), len);
  }
  if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &data,
                                           &len)) {
    seen->sigalgs_extension.assign(reinterpret_cast<const char*>(data), len);
  }
  return ssl_select_cert_success;
}

// Selects as an istio-proxy inbound does: the first of its own list (Istio's
// ALPNDownstreamWithMxc) that the client offers, else no ALPN.
int SelectLikeIstioInbound(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                           unsigned in_len, void*) {
  static const std::string* server = new std::string(AlpnWire(kIstioServerTcp));
  for (size_t s = 0; s < server->size(); s += 1 + (*server)[s]) {
    std::string_view mine(server->data() + s + 1, (*server)[s]);
    for (unsigned c = 0; c < in_len && c + 1 + in[c] <= in_len; c += 1 + in[c]) {
      if (std::string_view(reinterpret_cast<const char*>(in + c + 1), in[c]) == mine) {
        *out = in + c + 1;
        *out_len = in[c];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

TEST(IstioInteropTest, ClientOffersTandemThenIstioAndTalksToAnIstioInbound) {
  pki::CertificateAuthority ca = MakeRoot();
  pki::WorkloadCredentials server_creds = MakeWorkload(ca, kServerId);
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  SeenHandshake seen;
  SSL_CTX_set_app_data(ctx.get(), &seen);
  ASSERT_TRUE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION));
  ASSERT_TRUE(SSL_CTX_use_certificate(ctx.get(), server_creds.leaf().get()));
  ASSERT_TRUE(SSL_CTX_use_PrivateKey(ctx.get(), server_creds.key.get()));
  // An istio-proxy inbound requires a client certificate (ISTIO_MUTUAL).
  SSL_CTX_set_custom_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                            [](SSL*, uint8_t*) { return ssl_verify_ok; });
  SSL_CTX_set_select_certificate_cb(ctx.get(), RecordClientHello);
  SSL_CTX_set_alpn_select_cb(ctx.get(), SelectLikeIstioInbound, nullptr);
  tandem::testing::LoopbackServer istio_inbound(
      AF_INET, [&](int fd, tandem::testing::LoopbackServer::Connections&) {
        bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), fd);
        if (SSL_accept(ssl.get()) != 1) return;
        const uint8_t* proto;
        unsigned proto_len;
        SSL_get0_alpn_selected(ssl.get(), &proto, &proto_len);
        {
          absl::MutexLock lock(&seen.mu);
          seen.selected.assign(reinterpret_cast<const char*>(proto), proto_len);
          seen.completed = SSL_get0_peer_certificates(ssl.get()) != nullptr;
        }
        char buf[64];
        int n = SSL_read(ssl.get(), buf, sizeof(buf));
        if (n > 0) SSL_write(ssl.get(), buf, n);
        SSL_shutdown(ssl.get());
      });
  int outbound, unused;
  std::unique_ptr<Proxy> client = StartProxy(
      absl::StrCat(", \"outbound_fixed_destination\": \"127.0.0.1:", istio_inbound.port(),
                   "\""),
      &outbound, &unused);
  ASSERT_TRUE(client->tls().UpdateSecret(ToPem(MakeWorkload(ca, kClientId))).ok());

  int fd = tandem::testing::ConnectLoopback(outbound);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
  char reply[4] = {};
  ASSERT_EQ(recv(fd, reply, sizeof(reply), MSG_WAITALL), 4);
  close(fd);
  EXPECT_EQ(std::string(reply, 4), "ping");

  absl::MutexLock lock(&seen.mu);
  // The ALPN extension body: a 2-byte list length, then the names on the wire.
  std::string list = AlpnWire({"tandem-mtls/1", "istio"});
  std::string body = std::string{static_cast<char>(list.size() >> 8),
                                 static_cast<char>(list.size() & 0xff)} +
                     list;
  EXPECT_EQ(seen.alpn_extension, body);
  // Istio's inbound serves none of these: no ALPN, and the handshake completes with
  // our client certificate, so its filter chain (matched on "istio") is the TCP mTLS
  // one and its metadata exchange stays out of the stream.
  EXPECT_EQ(seen.selected, "");
  EXPECT_TRUE(seen.completed);
  // RSA-PSS is offered for TLS 1.3, so RSA leaves (Istio's default keys) verify.
  for (uint16_t scheme : {SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256,
                          SSL_SIGN_RSA_PSS_RSAE_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA512}) {
    std::string wire{static_cast<char>(scheme >> 8), static_cast<char>(scheme & 0xff)};
    bool found = false;
    for (size_t i = 2; i + 1 < seen.sigalgs_extension.size(); i += 2) {
      found |= seen.sigalgs_extension.compare(i, 2, wire) == 0;
    }
    EXPECT_TRUE(found) << "signature scheme 0x" << std::hex << scheme << " not offered";
  }
  istio_inbound.Stop();
}

// An Istio sidecar's outbound, played by openssl s_client with a client certificate
// from the mesh CA and exactly Istio's ALPN list.
class IstioClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = std::make_unique<pki::CertificateAuthority>(MakeRoot());
    pki::WorkloadCredentials client = MakeWorkload(*ca_, kClientId);
    std::ofstream(openssl_.PathOf("client.key")) << *client.key.ToPem();
    std::ofstream(openssl_.PathOf("client.crt"))
        << pki::Certificate::ChainToPem(client.chain);
    std::ofstream(openssl_.PathOf("root.crt")) << client.bundle.ToPem();
    int unused;
    server_ = StartProxy(
        absl::StrCat(", \"inbound_fixed_app\": \"127.0.0.1:", echo_.port(), "\""),
        &unused, &inbound_);
    ASSERT_TRUE(server_->tls().UpdateSecret(ToPem(MakeWorkload(*ca_, kServerId))).ok());
  }
  void TearDown() override {
    server_.reset();
    echo_.Stop();
  }
  // Runs s_client offering `alpn` (comma-separated) against tandem's inbound and
  // returns its report; the handshake's success shows in the app's connection count.
  std::string Handshake(const std::string& alpn) {
    absl::StatusOr<std::string> out = openssl_.Run(absl::StrCat(
        "s_client -connect 127.0.0.1:", inbound_,
        " -CAfile root.crt -cert client.crt -key client.key -verify_return_error",
        alpn.empty() ? "" : " -alpn " + alpn));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }
  // Waits until the app has seen `count` connections: tandem verified the client and
  // opened the connection to the app.
  bool AppConnections(int64_t count) {
    return tandem::testing::WaitFor([&] { return echo_.connections() >= count; },
                                    absl::Seconds(5));
  }

  tandem::testing::TempDir dir_{"tandem-istio-client"};
  tandem::testing::OpensslCli openssl_{dir_.path()};
  std::unique_ptr<pki::CertificateAuthority> ca_;
  EchoServer echo_;
  std::unique_ptr<Proxy> server_;
  int inbound_ = 0;
};

TEST_F(IstioClientTest, SelectsIstioForASidecarsTcpList) {
  // ALPNInMeshWithMxc: what a sidecar offers upstream for in-mesh TCP.
  std::string out = Handshake("istio-peer-exchange,istio");
  EXPECT_NE(out.find("ALPN protocol: istio\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  EXPECT_TRUE(AppConnections(1)) << out;
}

TEST_F(IstioClientTest, SelectsIstioForASidecarsHttpLists) {
  // mtlsHTTP10ALPN, mtlsHTTP11ALPN, mtlsHTTP2ALPN: what Istio's ALPN filter offers for
  // an HTTP/1.0, HTTP/1.1 or HTTP/2 upstream. The sidecar's codec comes from its
  // cluster, not from the ALPN answer, so "istio" is safe for all three.
  for (const char* offered : {"istio-http/1.0,istio,http/1.0",
                              "istio-http/1.1,istio,http/1.1", "istio-h2,istio,h2"}) {
    std::string out = Handshake(offered);
    EXPECT_NE(out.find("ALPN protocol: istio\n"), std::string::npos) << offered << "\n"
                                                                     << out;
  }
  EXPECT_TRUE(AppConnections(3));
}

TEST_F(IstioClientTest, NeverSelectsPeerExchangeButStillServes) {
  // Selecting it would make the sidecar write its metadata-exchange header into the
  // app's bytes; without a selection it sends none.
  std::string out = Handshake("istio-peer-exchange");
  EXPECT_NE(out.find("No ALPN negotiated"), std::string::npos) << out;
  EXPECT_TRUE(AppConnections(1)) << out;
}

TEST_F(IstioClientTest, PrefersTandemsOwnProtocolWhateverTheClientsOrder) {
  for (const char* offered : {"tandem-mtls/1,istio", "istio,tandem-mtls/1"}) {
    std::string out = Handshake(offered);
    EXPECT_NE(out.find("ALPN protocol: tandem-mtls/1\n"), std::string::npos)
        << offered << "\n"
        << out;
  }
  EXPECT_TRUE(AppConnections(2));
}

TEST_F(IstioClientTest, RefusesAnIstioListWithoutAClientCertificate) {
  // The output is not checked: in TLS 1.3 the client learns of the refusal only after
  // its Finished. The proxy counts it and the app never sees a connection.
  (void)openssl_.Run(absl::StrCat("s_client -connect 127.0.0.1:", inbound_,
                                  " -CAfile root.crt -alpn istio-peer-exchange,istio"));
  EXPECT_TRUE(tandem::testing::WaitFor(
      [&] {
        return tandem::testing::MetricValue(
                   server_->RenderMetrics(),
                   "tandem_proxy_handshake_failures_total{direction=\"inbound\","
                   "reason=\"tls_error\"}") == 1;
      },
      absl::Seconds(5)));
  EXPECT_EQ(echo_.connections(), 0);
}

}  // namespace
}  // namespace tandem::proxy
