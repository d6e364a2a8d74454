// gRPC code: never include <openssl/...> here.
#include "agent/policy_relay.h"

#include <grpcpp/grpcpp.h>

#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "agent/ca_channel.h"
#include "agent/ca_reachability.h"
#include "common/file_util.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/node_metadata.h"
#include "common/stream_loop.h"
#include "common/version.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace tandem::agent {

namespace pb = ::tandem::policy::v1;

namespace {

constexpr char kAnswersHelp[] = "Proxies' answers to relayed mesh policies, by result.";

}  // namespace

struct PolicyRelay::Impl final : public pb::MeshPolicyService::Service {
  explicit Impl(metrics::Registry& r)
      : registry(r),
        upstream_gauge(r.GetGauge("tandem_agent_policy_upstream_up",
                                  "1 while the mesh policy stream to the CA is up.")),
        relayed(r.GetCounter("tandem_agent_policy_responses_relayed_total",
                             "Mesh policy responses sent to proxy streams.")),
        acks(r.GetCounter("tandem_agent_policy_answers_total", kAnswersHelp,
                          {{"result", "ack"}})),
        nacks(r.GetCounter("tandem_agent_policy_answers_total", kAnswersHelp,
                           {{"result", "nack"}})),
        proxy_streams(r.GetGauge("tandem_agent_policy_streams",
                                 "Open mesh policy streams from proxies.")) {}

  PolicyRelayOptions options;
  metrics::Registry& registry;
  // Re-reads the CA's roots for every new upstream stream.
  std::shared_ptr<CaChannel> channel;
  StreamLoop upstream_loop;
  metrics::Gauge& upstream_gauge;
  metrics::Counter& relayed;
  metrics::Counter& acks;
  metrics::Counter& nacks;
  metrics::Gauge& proxy_streams;

  absl::Mutex mu;
  // The CA's latest response, served to every proxy stream; `generation` counts them.
  std::optional<pb::PolicyResponse> cached ABSL_GUARDED_BY(mu);
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  // The version a proxy last ACKed: what a new upstream stream says is in force.
  std::string acked_version ABSL_GUARDED_BY(mu);
  // What the agent reports of itself and its proxy (Node()): the certificate last
  // delivered, and the Node of the open proxy stream (`proxy_node_streams` of them;
  // cleared when none is left).
  std::string cert_serial ABSL_GUARDED_BY(mu);
  std::string cert_not_after ABSL_GUARDED_BY(mu);
  pb::Node proxy_node ABSL_GUARDED_BY(mu);
  int proxy_node_streams ABSL_GUARDED_BY(mu) = 0;
  // Why the last upstream stream ended; upstream thread only.
  std::string last_end_reason;

  // Serializes writes to the upstream stream (the upstream thread's first request and
  // every proxy stream's answers); gRPC allows one writer at a time.
  absl::Mutex write_mu;
  grpc::ClientReaderWriter<pb::PolicyRequest, pb::PolicyResponse>* upstream
      ABSL_GUARDED_BY(write_mu) = nullptr;

  // Runs one upstream stream until it ends; returns true if it received a response.
  bool RunUpstream();
  // Reports how an upstream call ended (or that it received a response: kOk).
  void Record(absl::StatusCode code);
  // Returns what this end of the upstream stream reports of itself.
  pb::Node NodeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Sends a node-only request upstream, if a stream is open (a new one starts with
  // the node anyway).
  void SendNode();
  // Sends a proxy's answer upstream when it answers the CA's current response.
  void ForwardAnswer(const pb::PolicyRequest& answer);

  struct WaitArgs {
    Impl* impl;
    uint64_t sent;
    const bool* reader_done;
    // Await calls it with `mu` held.
    static bool Changed(WaitArgs* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->impl->mu) {
      return (a->impl->cached.has_value() && a->impl->generation != a->sent) ||
             *a->reader_done || a->impl->upstream_loop.stopping();
    }
  };

  grpc::Status StreamPolicy(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<pb::PolicyResponse, pb::PolicyRequest>* stream) override {
    pb::PolicyRequest first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    {
      absl::MutexLock lock(&mu);
      // A restarted agent learns from its proxy what is in force.
      if (acked_version.empty()) acked_version = first.version_info();
      proxy_node = first.node_info();
      ++proxy_node_streams;
    }
    SendNode();
    proxy_streams.Add(1);
    bool reader_done = false;
    std::thread reader([&] {
      pb::PolicyRequest answer;
      while (stream->Read(&answer)) {
        if (!answer.error_detail().empty()) {
          nacks.Inc();
          log::Warn("agent", "proxy NACKed the mesh policy",
                    {{"nonce", answer.response_nonce()},
                     {"kept_version", answer.version_info()},
                     {"error", answer.error_detail()}});
        } else if (!answer.response_nonce().empty()) {
          acks.Inc();
        }
        ForwardAnswer(answer);
      }
      absl::MutexLock lock(&mu);  // wakes the writer
      reader_done = true;
    });
    uint64_t sent = 0;
    while (!context->IsCancelled()) {
      pb::PolicyResponse response;
      {
        absl::MutexLock lock(&mu);
        WaitArgs args{this, sent, &reader_done};
        mu.AwaitWithTimeout(absl::Condition(&WaitArgs::Changed, &args),
                            absl::Milliseconds(500));
        if (upstream_loop.stopping() || reader_done) break;
        if (!cached.has_value() || generation == sent) continue;
        response = *cached;
        sent = generation;
      }
      if (!stream->Write(response)) break;
      relayed.Inc();
    }
    context->TryCancel();
    reader.join();
    proxy_streams.Add(-1);
    {
      absl::MutexLock lock(&mu);
      if (--proxy_node_streams == 0) proxy_node.Clear();
    }
    SendNode();
    return grpc::Status::OK;
  }
};

void PolicyRelay::Impl::ForwardAnswer(const pb::PolicyRequest& answer) {
  {
    absl::MutexLock lock(&mu);
    // Answers to a response the CA has since replaced (or to one cached from an
    // earlier upstream stream) would confuse it: only the current one goes up.
    if (!cached.has_value() || answer.response_nonce() != cached->nonce()) return;
    if (answer.error_detail().empty()) acked_version = answer.version_info();
  }
  absl::MutexLock lock(&write_mu);
  if (upstream != nullptr) upstream->Write(answer);
}

pb::Node PolicyRelay::Impl::NodeLocked() const {
  pb::Node node;
  node.set_id(options.node);
  node.set_user_agent_name(proxy_node.user_agent_name());
  node.set_user_agent_version(proxy_node.user_agent_version());
  auto& metadata = *node.mutable_metadata();
  metadata[kNodeAgentVersion] = Version();
  if (!cert_serial.empty()) {
    metadata[kNodeCertSerial] = cert_serial;
    metadata[kNodeCertNotAfter] = cert_not_after;
  }
  return node;
}

void PolicyRelay::Impl::SendNode() {
  // Built under write_mu too, so two updates reach the CA in the order they were made.
  absl::MutexLock write_lock(&write_mu);
  if (upstream == nullptr) return;
  pb::PolicyRequest update;
  {
    absl::MutexLock lock(&mu);
    *update.mutable_node_info() = NodeLocked();
  }
  upstream->Write(update);
}

void PolicyRelay::Impl::Record(absl::StatusCode code) {
  RecordCaCall(registry, code);
  if (options.on_ca_reached && ReachedCa(code)) options.on_ca_reached();
}

bool PolicyRelay::Impl::RunUpstream() {
  absl::StatusOr<std::string> token = ReadFileToString(options.token_file);
  if (!token.ok()) {
    log::Error("agent", "mesh policy stream: cannot read the token",
               {{"error", std::string(token.status().message())}});
    return false;
  }
  grpc::ClientContext context;
  context.AddMetadata("authorization",
                      "Bearer " + std::string(absl::StripAsciiWhitespace(*token)));
  StreamLoop::Attachment attachment =
      upstream_loop.Attach([&context] { context.TryCancel(); });
  if (!attachment.attached()) return false;
  pb::PolicyRequest first;
  first.set_node(options.node);
  // Before the stream, after it: the call keeps the stub's channel.
  auto stub = pb::MeshPolicyService::NewStub(channel->Get());
  auto stream = stub->StreamPolicy(&context);
  bool opened;
  {
    // The node is read under write_mu, as SendNode does: a change made before
    // `upstream` is set is in this request, one made after is sent after it.
    absl::MutexLock write_lock(&write_mu);
    upstream = stream.get();
    {
      absl::MutexLock lock(&mu);
      first.set_version_info(acked_version);
      *first.mutable_node_info() = NodeLocked();
    }
    opened = stream->Write(first);
  }
  bool received = false;
  pb::PolicyResponse response;
  while (opened && stream->Read(&response)) {
    if (!received) Record(absl::StatusCode::kOk);
    received = true;
    upstream_gauge.Set(1);
    absl::MutexLock lock(&mu);
    cached = response;
    ++generation;
  }
  upstream_gauge.Set(0);
  {
    absl::MutexLock lock(&write_mu);
    upstream = nullptr;
  }
  context.TryCancel();
  grpc::Status status = stream->Finish();
  // Also a CA without MeshPolicyService (UNIMPLEMENTED) answered: it is reachable.
  if (!upstream_loop.stopping()) {
    auto code = static_cast<absl::StatusCode>(status.error_code());
    // A stream that received told on_ca_reached at its first response already.
    if (received) {
      RecordCaCall(registry, code);
    } else {
      Record(code);
    }
  }
  std::string why = status.ok() ? "closed" : status.error_message();
  // Logged when the reason changes: a CA without MeshPolicyService (UNIMPLEMENTED, e.g.
  // istiod) must not fill the log every few seconds.
  if (!upstream_loop.stopping() && (received || why != last_end_reason)) {
    log::Warn("agent", "mesh policy stream to the CA ended; serving the last policy",
              {{"reason", why}});
  }
  last_end_reason = why;
  return received;
}

absl::StatusOr<std::unique_ptr<PolicyRelay>> PolicyRelay::Create(
    PolicyRelayOptions options) {
  if (options.ca.root_pem.empty()) {
    return absl::InvalidArgumentError("CA root certificate is required to verify the CA");
  }
  auto impl = std::make_unique<Impl>(options.registry ? *options.registry
                                                      : metrics::Registry::Default());
  impl->channel =
      options.channel ? options.channel : std::make_shared<CaChannel>(options.ca);
  impl->options = std::move(options);
  return std::unique_ptr<PolicyRelay>(new PolicyRelay(std::move(impl)));
}

PolicyRelay::PolicyRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PolicyRelay::~PolicyRelay() { Stop(); }

void PolicyRelay::Start() {
  impl_->upstream_loop.Start([impl = impl_.get()] { return impl->RunUpstream(); });
}

void PolicyRelay::Stop() {
  impl_->upstream_loop.Stop();
  // Proxy stream writers await a condition on `mu` that reads stopping(): releasing `mu`
  // makes them look again now rather than at their next timeout.
  absl::MutexLock wake(&impl_->mu);
}

grpc::Service* PolicyRelay::service() { return impl_.get(); }

void PolicyRelay::SetCertificate(const std::string& serial_hex, absl::Time not_after) {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->cert_serial = serial_hex;
    impl_->cert_not_after =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", not_after, absl::UTCTimeZone());
  }
  impl_->SendNode();
}

bool PolicyRelay::upstream_up() const { return impl_->upstream_gauge.Value() == 1; }
uint64_t PolicyRelay::responses_relayed() const { return impl_->relayed.Value(); }
uint64_t PolicyRelay::nacks() const { return impl_->nacks.Value(); }

}  // namespace tandem::agent
