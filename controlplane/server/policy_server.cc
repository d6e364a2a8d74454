// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3).
#include "controlplane/server/policy_server.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"
#include "common/node_metadata.h"
#include "common/spiffe_id.h"
#include "controlplane/auth/refusal_reason.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace tandem::controlplane {
namespace {

using tandem::policy::v1::PolicyRequest;
using tandem::policy::v1::PolicyResponse;
using tandem::policy::v1::WorkloadPolicy;
using Stream = grpc::ServerReaderWriter<PolicyResponse, PolicyRequest>;

grpc::StatusCode GrpcCodeOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return grpc::StatusCode::UNAVAILABLE;
    case absl::StatusCode::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    default:
      return grpc::StatusCode::UNAUTHENTICATED;
  }
}

// One open stream. Guarded by Impl::mu.
struct StreamState {
  grpc::ServerContext* context = nullptr;
  ServiceAccount account;
  PolicyServer::StreamInfo info;
  bool got_first_request = false;
  bool reader_done = false;
  uint64_t seen_generation = 0;
  bool sent_any = false;
  std::string sent_nonce;
};

// Returns at most `max` bytes of `text`, cut at a UTF-8 character boundary (the JSON
// printer refuses a string with half a character).
std::string Bounded(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

// Copies what `node` reports into `info`, each field bounded: the client's word, kept
// as long as its stream.
void ApplyNode(const tandem::policy::v1::Node& node, PolicyServer::StreamInfo* info) {
  auto bounded = [](const std::string& text) {
    return Bounded(text, PolicyServer::kMaxNodeFieldBytes);
  };
  auto metadata = [&](const char* key) {
    auto it = node.metadata().find(key);
    return it == node.metadata().end() ? std::string() : bounded(it->second);
  };
  if (!node.id().empty()) info->node = bounded(node.id());
  info->proxy_name = bounded(node.user_agent_name());
  info->proxy_version = bounded(node.user_agent_version());
  info->agent_version = metadata(kNodeAgentVersion);
  info->cert_serial = metadata(kNodeCertSerial);
  std::string why;
  if (!absl::ParseTime(absl::RFC3339_full, metadata(kNodeCertNotAfter),
                       &info->cert_not_after, &why)) {
    info->cert_not_after = absl::InfinitePast();
  }
}

std::string Rfc3339(absl::Time time) {
  if (time == absl::InfinitePast()) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

}  // namespace

std::string PolicyVersion(const WorkloadPolicy& policy) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    policy.SerializeToCodedStream(&coded);
  }
  return StableVersion(bytes);
}

struct PolicyServer::Impl final : tandem::policy::v1::MeshPolicyService::Service {
  Impl(PolicyServerOptions options, const CallerAuthenticator* authenticator)
      : options(std::move(options)),
        authenticator(authenticator),
        no_policy(std::make_shared<const PolicyFile>(*PolicyFile::Parse("{}", "none"))),
        responses(registry.GetCounter("tandem_ca_policy_responses_total",
                                      "Policy versions sent on streams.")),
        acks(registry.GetCounter("tandem_ca_policy_acks_total",
                                 "Policy versions ACKed by proxies.")),
        nacks(registry.GetCounter("tandem_ca_policy_nacks_total",
                                  "Policy versions NACKed by proxies.")) {
    for (size_t r = 0; r < kRefusalReasonCount; ++r) {
      refusals[r] = &registry.GetCounter("tandem_ca_policy_stream_refusals_total",
                                         "StreamPolicy calls refused, by reason.",
                                         {{"reason", std::string(kRefusalReasons[r])}});
    }
    RegisterStateMetrics();
  }

  // The families read from other state at scrape time.
  void RegisterStateMetrics() {
    const PolicyWatcher* watcher = options.policy;
    for (bool accepted : {true, false}) {
      registry.AddCounterFunction(
          "tandem_ca_policy_loads_total", "Policy file loads, by result.",
          {{"result", accepted ? "accepted" : "refused"}}, [watcher, accepted] {
            if (watcher == nullptr) return uint64_t{0};
            return accepted ? watcher->loads_accepted() : watcher->loads_refused();
          });
    }
    registry.AddGaugeFunction("tandem_ca_policy_streams", "Open StreamPolicy streams.",
                              {}, [this] {
                                absl::MutexLock lock(&mu);
                                return static_cast<double>(streams.size());
                              });
    metrics::Gauge& serials =
        registry.GetGauge("tandem_ca_revocations", "Revocations in force, by target.",
                          {{"target", "serial"}});
    metrics::Gauge& identities =
        registry.GetGauge("tandem_ca_revocations", "Revocations in force, by target.",
                          {{"target", "spiffe_id"}});
    registry.AddCollector([this, watcher, &serials, &identities] {
      registry.SetInfo("tandem_ca_policy_info",
                       "The mesh policy file in force (its version).",
                       {{"version", watcher != nullptr ? watcher->current()->version()
                                                       : no_policy->version()}});
      size_t by_serial = 0, by_identity = 0;
      if (options.revocations != nullptr) {
        for (const auto& r : options.revocations->Live(absl::Now())) {
          ++(r.has_serial_hex() ? by_serial : by_identity);
        }
      }
      serials.Set(static_cast<double>(by_serial));
      identities.Set(static_cast<double>(by_identity));
    });
  }

  grpc::Status StreamPolicy(grpc::ServerContext* context, Stream* stream) override {
    absl::StatusOr<ServiceAccount> account =
        authenticator->Authenticate(context, absl::Now());
    if (!account.ok()) {
      std::string reason = RefusalReasonOf(account.status(), "internal");
      refusals[RefusalReasonIndex(reason)]->Inc();
      log::Warn("ca", "policy stream refused",
                {{"reason", reason}, {"error", std::string(account.status().message())}});
      return grpc::Status(GrpcCodeOf(account.status().code()),
                          std::string(account.status().message()));
    }
    StreamState state;
    state.context = context;
    state.account = *account;
    absl::StatusOr<SpiffeId> id =
        SpiffeId::ForWorkload(options.trust_domain, account->ns, account->name);
    state.info.spiffe_id = id.ok() ? id->ToString() : account->ns + "/" + account->name;
    state.info.connected_since = absl::Now();
    {
      absl::MutexLock lock(&mu);
      if (stopping) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
      streams.insert(&state);
    }
    std::thread reader([this, stream, &state] { ReadRequests(stream, &state); });
    grpc::Status status = WriteResponses(stream, &state);
    bool reader_done;
    {
      absl::MutexLock lock(&mu);
      reader_done = state.reader_done;
    }
    // The reader is blocked in Read() until the client closes or the call ends.
    if (!reader_done) context->TryCancel();
    reader.join();
    absl::MutexLock lock(&mu);
    streams.erase(&state);
    return status;
  }

  // Runs on the stream's reader thread: records ACKs and NACKs.
  void ReadRequests(Stream* stream, StreamState* state) {
    PolicyRequest request;
    while (stream->Read(&request)) {
      std::string nack_log;
      {
        absl::MutexLock lock(&mu);
        if (!state->got_first_request) {
          state->got_first_request = true;
          state->info.node = Bounded(request.node(), kMaxNodeFieldBytes);
          if (request.has_node_info()) ApplyNode(request.node_info(), &state->info);
          continue;
        }
        if (request.has_node_info()) ApplyNode(request.node_info(), &state->info);
        // No nonce: a node update, not an answer.
        if (request.response_nonce().empty()) continue;
        if (request.response_nonce() != state->sent_nonce) continue;  // stale answer
        if (request.error_detail().empty()) {
          acks.Inc();
          state->info.acked_version = request.version_info();
        } else {
          nacks.Inc();
          state->info.nacked_version = state->info.sent_version;
          state->info.last_nack_error =
              Bounded(request.error_detail(), kMaxNackErrorBytes);
          nack_log =
              absl::StrCat("tandem-ca: policy version ", state->info.sent_version,
                           " NACKed by ", state->info.spiffe_id, " (node \"",
                           state->info.node, "\"): ", request.error_detail(), "\n");
        }
      }
      if (!nack_log.empty()) std::fputs(nack_log.c_str(), stderr);
    }
    absl::MutexLock lock(&mu);
    state->reader_done = true;
  }

  // Runs on the gRPC thread: sends the policy after the first request and after every
  // change of it, until the client leaves or the server stops.
  grpc::Status WriteResponses(Stream* stream, StreamState* state) {
    while (true) {
      {
        absl::MutexLock lock(&mu);
        auto ready = [this, state] {
          return stopping || state->reader_done ||
                 (state->got_first_request &&
                  (!state->sent_any || generation != state->seen_generation));
        };
        mu.Await(absl::Condition(&ready));
        if (stopping) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "tandem-ca is stopping");
        }
        if (state->reader_done) return grpc::Status::OK;
        state->seen_generation = generation;
      }
      PolicyResponse response;
      *response.mutable_policy() = Snapshot(state->account);
      response.set_version_info(PolicyVersion(response.policy()));
      {
        absl::MutexLock lock(&mu);
        if (state->sent_any && response.version_info() == state->info.sent_version) {
          continue;  // this change does not concern this workload
        }
        response.set_nonce(absl::StrCat(next_nonce++));
        state->sent_any = true;
        state->sent_nonce = response.nonce();
        state->info.sent_version = response.version_info();
      }
      if (!stream->Write(response)) return grpc::Status::OK;  // the client is gone
      responses.Inc();
    }
  }

  WorkloadPolicy Snapshot(const ServiceAccount& account) const {
    std::shared_ptr<const PolicyFile> file =
        options.policy != nullptr ? options.policy->current() : no_policy;
    WorkloadPolicy policy = file->Resolve(account);
    if (options.revocations != nullptr) {
      for (tandem::policy::v1::Revocation& r : options.revocations->Live(absl::Now())) {
        *policy.add_revocations() = std::move(r);
      }
    }
    return policy;
  }

  // What the streams depend on, besides the clock.
  std::string Fingerprint() const {
    return absl::StrCat(
        options.policy != nullptr ? options.policy->current()->version() : "", "/",
        options.revocations != nullptr ? options.revocations->generation() : 0);
  }

  // Runs on the poll thread. `fingerprint` is taken before the thread starts: taken
  // here, a revocation made while a loaded machine had not yet run this thread would
  // become the baseline, and no stream would ever be told of it (seen under load).
  void Poll(std::string fingerprint) {
    while (true) {
      {
        absl::MutexLock lock(&mu);
        if (mu.AwaitWithTimeout(absl::Condition(&stopping), options.poll_interval)) {
          return;
        }
      }
      if (options.policy != nullptr) options.policy->Poll();
      if (options.revocations != nullptr) {
        absl::StatusOr<size_t> dropped = options.revocations->DropExpired(absl::Now());
        if (!dropped.ok()) {
          log::Error("ca", "cannot persist expired revocations",
                     {{"error", std::string(dropped.status().message())}});
        }
      }
      if (std::string now = Fingerprint(); now != fingerprint) {
        fingerprint = now;
        absl::MutexLock lock(&mu);
        ++generation;  // wakes every stream's writer
      }
    }
  }

  const PolicyServerOptions options;
  const CallerAuthenticator* const authenticator;
  const std::shared_ptr<const PolicyFile> no_policy;
  std::thread poll_thread;  // owning thread only

  mutable absl::Mutex mu;
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  uint64_t next_nonce ABSL_GUARDED_BY(mu) = 1;
  std::set<StreamState*> streams ABSL_GUARDED_BY(mu);

  metrics::Registry registry;  // before the metrics it owns
  metrics::Counter& responses;
  metrics::Counter& acks;
  metrics::Counter& nacks;
  std::array<metrics::Counter*, kRefusalReasonCount> refusals{};
};

PolicyServer::PolicyServer(PolicyServerOptions options,
                           const CallerAuthenticator* authenticator)
    : impl_(std::make_unique<Impl>(std::move(options), authenticator)) {}

PolicyServer::~PolicyServer() { Stop(); }

grpc::Service* PolicyServer::service() { return impl_.get(); }

void PolicyServer::Start() {
  impl_->poll_thread = std::thread(
      [this, fingerprint = impl_->Fingerprint()] { impl_->Poll(fingerprint); });
}

void PolicyServer::Stop() {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
    // Unblocks each stream's reader (in Read) and writer (in Write or Await).
    for (StreamState* stream : impl_->streams) stream->context->TryCancel();
  }
  if (impl_->poll_thread.joinable()) impl_->poll_thread.join();
}

std::vector<PolicyServer::StreamInfo> PolicyServer::Streams() const {
  absl::MutexLock lock(&impl_->mu);
  std::vector<StreamInfo> out;
  for (const StreamState* stream : impl_->streams) out.push_back(stream->info);
  return out;
}

std::string PolicyServer::StreamsJson() const {
  // Built as a protobuf Struct so protobuf does the JSON escaping of client text.
  google::protobuf::Struct root;
  google::protobuf::ListValue* list =
      (*root.mutable_fields())["streams"].mutable_list_value();
  for (const StreamInfo& stream : Streams()) {
    auto& fields = *list->add_values()->mutable_struct_value()->mutable_fields();
    fields["node"].set_string_value(stream.node);
    fields["spiffe_id"].set_string_value(stream.spiffe_id);
    fields["sent_version"].set_string_value(stream.sent_version);
    fields["acked_version"].set_string_value(stream.acked_version);
    fields["nacked_version"].set_string_value(stream.nacked_version);
    fields["last_nack_error"].set_string_value(stream.last_nack_error);
    fields["proxy_name"].set_string_value(stream.proxy_name);
    fields["proxy_version"].set_string_value(stream.proxy_version);
    fields["agent_version"].set_string_value(stream.agent_version);
    fields["cert_serial"].set_string_value(stream.cert_serial);
    fields["cert_not_after"].set_string_value(Rfc3339(stream.cert_not_after));
    fields["connected_since"].set_string_value(Rfc3339(stream.connected_since));
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(root, &json);
  return json + "\n";
}

std::string PolicyServer::RenderMetrics() const {
  return impl_->registry.RenderPrometheus();
}

}  // namespace tandem::controlplane
