// Policies cross into the data plane only through PolicySink.
#include "proxy/policy_client.h"

#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/node_metadata.h"
#include "common/stream_loop.h"
#include "common/version.h"
#include "proxy/grpc_stream.h"
#include "tandem/mesh_policy.pb.h"

namespace tandem::proxy {

struct PolicyClient::Impl {
  std::string socket_path;
  std::string node;
  PolicySink* sink;
  metrics::Registry registry;  // before the metrics it owns
  metrics::Gauge& connected =
      registry.GetGauge("tandem_proxy_policy_stream_connected",
                        "1 while the mesh policy stream to the agent is up.");
  metrics::Counter& streams = registry.GetCounter("tandem_proxy_policy_streams_total",
                                                  "Mesh policy streams opened.");
  // The version in force; background thread only.
  std::string applied_version;
  StreamLoop loop;

  // Runs one stream until it ends; returns true if it ever received a response.
  bool RunStream();
};

absl::StatusOr<std::unique_ptr<PolicyClient>> PolicyClient::Create(
    std::string socket_path, std::string node, PolicySink* sink) {
  if (socket_path.empty() || socket_path[0] != '/') {
    return absl::InvalidArgumentError("policy socket must be an absolute path");
  }
  auto impl = std::make_unique<Impl>();
  impl->socket_path = std::move(socket_path);
  impl->node = std::move(node);
  impl->sink = sink;
  return std::unique_ptr<PolicyClient>(new PolicyClient(std::move(impl)));
}

PolicyClient::PolicyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PolicyClient::~PolicyClient() { Stop(); }

void PolicyClient::Start() {
  impl_->loop.Start([impl = impl_.get()] { return impl->RunStream(); });
}

void PolicyClient::Stop() { impl_->loop.Stop(); }

std::string PolicyClient::RenderMetrics() const {
  return impl_->registry.RenderPrometheus();
}

bool PolicyClient::Impl::RunStream() {
  absl::StatusOr<std::unique_ptr<GrpcStream>> stream =
      GrpcStream::Open(socket_path, "/tandem.policy.v1.MeshPolicyService/StreamPolicy");
  if (!stream.ok()) {
    log::Debug("proxy", "policy stream not opened",
               {{"error", stream.status().ToString()}});
    return false;
  }
  GrpcStream* s = stream->get();
  StreamLoop::Attachment attachment = loop.Attach([s] { s->Cancel(); });
  if (!attachment.attached()) return false;
  streams.Inc();
  policy::v1::PolicyRequest request;
  request.set_node(node);
  request.set_version_info(applied_version);
  // Who we are, for `tandemctl proxy-status` (the agent passes it on to the CA).
  request.mutable_node_info()->set_id(node);
  request.mutable_node_info()->set_user_agent_name(kProxyUserAgent);
  request.mutable_node_info()->set_user_agent_version(Version());
  bool received = false;
  if (s->Write(request)) {
    policy::v1::PolicyResponse response;
    while (s->Read(&response)) {
      received = true;
      connected.Set(1);
      absl::Status applied =
          sink->ApplyPolicy(response.policy(), response.version_info());
      policy::v1::PolicyRequest answer;
      answer.set_node(node);
      answer.set_response_nonce(response.nonce());
      if (applied.ok()) {
        applied_version = response.version_info();
        log::Info("proxy", "mesh policy applied", {{"version", applied_version}});
      } else {
        answer.set_error_detail(std::string(applied.message()));
        log::Error("proxy", "mesh policy refused, keeping the last good one",
                   {{"version", response.version_info()},
                    {"kept", applied_version.empty() ? "config file" : applied_version},
                    {"error", answer.error_detail()}});
      }
      answer.set_version_info(applied_version);
      if (!s->Write(answer)) break;
    }
  }
  connected.Set(0);
  log::Debug("proxy", "policy stream ended", {{"status", s->Finish().ToString()}});
  return received;
}

}  // namespace tandem::proxy
