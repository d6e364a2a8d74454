// Secrets cross into BoringSSL code only as PEM strings through SecretSink.
#include "proxy/sds_client.h"

#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/stream_loop.h"
#include "envoy/sds.pb.h"
#include "proxy/grpc_stream.h"
#include "proxy/sds_response.h"

namespace tandem::proxy {

namespace discovery = ::envoy::service::discovery::v3;

struct SdsClient::Impl {
  std::string socket_path;
  SecretSink* sink;
  SdsReconnectOptions reconnect;
  metrics::Registry registry;  // before the metrics it owns
  metrics::Counter& accepted =
      registry.GetCounter("tandem_proxy_sds_updates_total",
                          "SDS secrets received, by result.", {{"result", "accepted"}});
  metrics::Counter& refused =
      registry.GetCounter("tandem_proxy_sds_updates_total",
                          "SDS secrets received, by result.", {{"result", "refused"}});
  metrics::Gauge& connected = registry.GetGauge(
      "tandem_proxy_sds_connected", "1 while the SDS stream to the agent is up.");
  metrics::Counter& streams =
      registry.GetCounter("tandem_proxy_sds_streams_total", "SDS streams opened.");
  StreamLoop loop;

  // Runs one stream until it ends; returns true if it ever received a response.
  bool RunStream();
};

absl::StatusOr<std::unique_ptr<SdsClient>> SdsClient::Create(
    std::string socket_path, SecretSink* sink, SdsReconnectOptions reconnect) {
  if (socket_path.empty() || socket_path[0] != '/') {
    return absl::InvalidArgumentError("sds_socket must be an absolute path");
  }
  auto impl = std::make_unique<Impl>();
  impl->socket_path = std::move(socket_path);
  impl->sink = sink;
  impl->reconnect = std::move(reconnect);
  return std::unique_ptr<SdsClient>(new SdsClient(std::move(impl)));
}

SdsClient::SdsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SdsClient::~SdsClient() { Stop(); }

void SdsClient::Start() {
  BackoffCap cap;
  if (impl_->reconnect.certificate_not_after) {
    cap = [impl = impl_.get()](absl::Duration backoff) {
      return CapRetryBackoff(impl->reconnect.cap, backoff,
                             impl->reconnect.certificate_not_after(), absl::Now());
    };
  }
  impl_->loop.Start([impl = impl_.get()] { return impl->RunStream(); }, std::move(cap));
}

void SdsClient::Stop() { impl_->loop.Stop(); }

std::string SdsClient::RenderMetrics() const {
  return impl_->registry.RenderPrometheus();
}

bool SdsClient::Impl::RunStream() {
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream = GrpcStream::Open(
      socket_path, "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets");
  if (!stream.ok()) {
    log::Debug("proxy", "SDS stream not opened", {{"error", stream.status().ToString()}});
    return false;
  }
  GrpcStream* s = stream->get();
  StreamLoop::Attachment attachment = loop.Attach([s] { s->Cancel(); });
  if (!attachment.attached()) return false;
  streams.Inc();
  discovery::DiscoveryRequest request;
  request.mutable_node()->set_id("tandem-proxy");
  request.add_resource_names("default");
  request.add_resource_names("ROOTCA");
  request.set_type_url(kSdsSecretTypeUrl);
  bool received = false;
  WorkloadSecretPem held;  // what this stream delivered and the sink accepted
  // The version last applied on this stream: what an ACK names, and what a NACK says
  // stays in force (Envoy's xDS semantics).
  std::string applied_version;
  if (s->Write(request)) {
    discovery::DiscoveryResponse response;
    while (s->Read(&response)) {
      received = true;
      connected.Set(1);
      std::string error;
      absl::StatusOr<WorkloadSecretPem> merged = ApplySdsResponse(response, held);
      if (!merged.ok()) {
        error = std::string(merged.status().message());
      } else if (SdsSecretComplete(*merged)) {
        // Until both "default" and "ROOTCA" have arrived there is nothing to install.
        absl::Status updated = sink->UpdateSecret(*merged);
        if (!updated.ok()) error = std::string(updated.message());
      }
      if (error.empty()) held = *std::move(merged);
      // Every request restates the subscription: in state of the world an empty
      // resource_names would mean "everything".
      discovery::DiscoveryRequest ack = request;
      ack.set_response_nonce(response.nonce());
      if (error.empty()) {
        accepted.Inc();
        applied_version = response.version_info();
        ack.set_version_info(applied_version);
      } else {
        ack.set_version_info(applied_version);
        refused.Inc();
        log::Error("proxy", "SDS update refused",
                   {{"version", response.version_info()}, {"error", error}});
        ack.mutable_error_detail()->set_code(
            static_cast<int>(absl::StatusCode::kInvalidArgument));
        ack.mutable_error_detail()->set_message(error);
      }
      if (!s->Write(ack)) break;
    }
  }
  connected.Set(0);
  log::Debug("proxy", "SDS stream ended", {{"status", s->Finish().ToString()}});
  return received;
}

}  // namespace tandem::proxy
