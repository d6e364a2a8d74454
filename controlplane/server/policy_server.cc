// gRPC code: never include <openssl/...> here (gRPC carries OpenSSL 3).
#include "controlplane/server/policy_server.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

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

struct PolicyServer::Impl final : tandem::policy::v1::MeshPolicyService::CallbackService {
  class Stream;
  // The policy of one service account at one generation, shared by its streams.
  struct Snapshot {
    WorkloadPolicy policy;
    std::string version;
  };

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

  grpc::ServerBidiReactor<PolicyRequest, PolicyResponse>* StreamPolicy(
      grpc::CallbackServerContext* context) override;

  // Sends `stream` the policy if it is owed it. Any thread but the poll thread's
  // PushAll; `mu` not held; `stream` kept alive by the caller (a reaction in progress).
  void Push(Stream* stream);
  // Poll thread: sends every stream owed the policy.
  void PushAll();
  // Returns `account`'s policy as of `generation`, resolved once per generation.
  const Snapshot& SnapshotLocked(const ServiceAccount& account)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Ends every stream (UNAVAILABLE) and waits until gRPC is done with them.
  void StopStreams();

  WorkloadPolicy Resolve(const ServiceAccount& account) const {
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
        auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
          return stopping || wake_poll;
        };
        mu.AwaitWithTimeout(absl::Condition(&woken), options.poll_interval);
        if (stopping) return;
        wake_poll = false;
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
        {
          absl::MutexLock lock(&mu);
          ++generation;
        }
        PushAll();
      }
    }
  }

  const PolicyServerOptions options;
  const CallerAuthenticator* const authenticator;
  const std::shared_ptr<const PolicyFile> no_policy;
  std::thread poll_thread;  // owning thread only
  bool listening = false;   // owning thread only: the revocation listener is ours

  mutable absl::Mutex mu;
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  // A revocation changed: the poll thread looks now rather than at its next tick.
  bool wake_poll ABSL_GUARDED_BY(mu) = false;
  uint64_t next_nonce ABSL_GUARDED_BY(mu) = 1;
  std::set<Stream*> streams ABSL_GUARDED_BY(mu);
  // Streams whose authentication is queued or running on options.blocking: Stop
  // waits for them too.
  int authenticating ABSL_GUARDED_BY(mu) = 0;
  // Snapshots by "namespace/name", all of generation `cache_generation`: 10,000
  // streams of 1,000 service accounts resolve the policy 1,000 times per change.
  uint64_t cache_generation ABSL_GUARDED_BY(mu) = 0;
  std::unordered_map<std::string, Snapshot> cache ABSL_GUARDED_BY(mu);

  metrics::Registry registry;  // before the metrics it owns
  metrics::Counter& responses;
  metrics::Counter& acks;
  metrics::Counter& nacks;
  std::array<metrics::Counter*, kRefusalReasonCount> refusals{};
};

// One StreamPolicy call, from the first request until gRPC calls OnDone (which deletes
// it). Its fields are guarded by Impl::mu, except `request` (owned by the read in
// flight) and `response` (owned by the write in flight: at most one at a time).
class PolicyServer::Impl::Stream final
    : public grpc::ServerBidiReactor<PolicyRequest, PolicyResponse> {
 public:
  Stream(Impl* impl, grpc::CallbackServerContext* context)
      : impl_(impl), context_(context) {}

  // gRPC thread: authenticates, on options.blocking's thread when set (a TokenReview
  // waits on the API server, and gRPC has two threads for every stream), and then
  // starts reading or refuses.
  void Begin() {
    if (impl_->options.blocking == nullptr) return Authenticate();
    {
      absl::MutexLock lock(&impl_->mu);
      ++impl_->authenticating;
    }
    // `impl`, not impl_: once Authenticate has started a read or finished, gRPC may
    // end the stream and delete it.
    impl_->options.blocking->Run([this, impl = impl_] {
      Authenticate();
      absl::MutexLock lock(&impl->mu);
      --impl->authenticating;
    });
  }

  void Authenticate() {
    absl::StatusOr<ServiceAccount> account =
        impl_->authenticator->Authenticate(context_, absl::Now());
    if (!account.ok()) {
      std::string reason = RefusalReasonOf(account.status(), "internal");
      impl_->refusals[RefusalReasonIndex(reason)]->Inc();
      log::Warn("ca", "policy stream refused",
                {{"reason", reason}, {"error", std::string(account.status().message())}});
      Finish(grpc::Status(GrpcCodeOf(account.status().code()),
                          std::string(account.status().message())));
      return;
    }
    account_ = *account;
    absl::StatusOr<SpiffeId> id =
        SpiffeId::ForWorkload(impl_->options.trust_domain, account->ns, account->name);
    {
      absl::MutexLock lock(&impl_->mu);
      info_.spiffe_id = id.ok() ? id->ToString() : account->ns + "/" + account->name;
      info_.connected_since = absl::Now();
      if (!impl_->stopping) {
        impl_->streams.insert(this);
        registered_ = true;
      }
    }
    if (!registered_) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
      return;
    }
    StartRead(&request_);
  }

  // Records the request (node, ACK or NACK); the first one makes the policy go out.
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed or the call ended
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&impl_->mu);
        reader_done_ = true;
        finish = FinishIfIdleLocked(grpc::Status::OK);
      }
      if (finish) Finish(*finish);
      return;
    }
    std::string nack_log;
    bool first = false;
    {
      absl::MutexLock lock(&impl_->mu);
      nack_log = RecordLocked(&first);
    }
    if (!nack_log.empty()) std::fputs(nack_log.c_str(), stderr);
    if (first) impl_->Push(this);
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    if (ok) impl_->responses.Inc();
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&impl_->mu);
      write_in_flight_ = false;
      // A failed write: the client is gone.
      if (!ok) reader_done_ = true;
      finish = FinishIfIdleLocked(grpc::Status::OK);
    }
    if (finish) {
      Finish(*finish);
      return;
    }
    // A change that came while this write was in flight.
    impl_->Push(this);
  }

  void OnDone() override {
    if (registered_) {
      absl::MutexLock lock(&impl_->mu);
      impl_->streams.erase(this);
    }
    delete this;
  }

  // With Impl::mu held: the status to Finish with (outside the lock) if the stream must
  // end and has no write in flight; each stream finishes once.
  std::optional<grpc::Status> FinishIfIdleLocked(grpc::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    if (finished_ || write_in_flight_ || cancelling_) return std::nullopt;
    if (impl_->stopping) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "tandem-ca is stopping");
    } else if (!reader_done_) {
      return std::nullopt;
    }
    finished_ = true;
    return status;
  }

  // Impl holds its `mu`, which is this stream's impl_->mu: says so to the analysis,
  // which cannot see that the two are one (and checks it at run time).
  void AssertLockHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(impl_->mu) {
    impl_->mu.AssertHeld();
  }

  // With Impl::mu held: true when this stream is owed the policy as of `as_of`.
  bool WantsLocked(uint64_t as_of) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    return !finished_ && !write_in_flight_ && !reader_done_ && !impl_->stopping &&
           got_first_request_ && (!sent_any_ || seen_generation_ != as_of);
  }

  // With Impl::mu held, after WantsLocked: fills the response from `snapshot` unless
  // it is the version already sent; true when StartWrite(&response_) must follow.
  bool PrepareLocked(uint64_t as_of, const Snapshot& snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    seen_generation_ = as_of;
    // A change that does not concern this workload.
    if (sent_any_ && snapshot.version == info_.sent_version) return false;
    *response_.mutable_policy() = snapshot.policy;
    response_.set_version_info(snapshot.version);
    response_.set_nonce(absl::StrCat(impl_->next_nonce++));
    sent_any_ = true;
    sent_nonce_ = response_.nonce();
    info_.sent_version = snapshot.version;
    write_in_flight_ = true;
    return true;
  }

  void Write() { StartWrite(&response_); }
  // With Impl::mu held: starts or ends a cancel, during which the stream does not
  // finish. Ending it returns the status to Finish with, as FinishIfIdleLocked does.
  void BeginCancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    cancelling_ = true;
  }
  std::optional<grpc::Status> EndCancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    cancelling_ = false;
    return FinishIfIdleLocked(grpc::Status::OK);
  }
  // Impl::mu not held, between BeginCancelLocked and EndCancelLocked: fails the
  // call's reads and writes in flight.
  void Cancel() { context_->TryCancel(); }

  const ServiceAccount& account() const { return account_; }
  bool finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) { return finished_; }
  const StreamInfo& info() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    return info_;
  }

 private:
  // With Impl::mu held: takes in request_; returns the NACK line to log, if any.
  std::string RecordLocked(bool* first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu) {
    const PolicyRequest& request = request_;
    if (!got_first_request_) {
      got_first_request_ = true;
      *first = true;
      info_.node = Bounded(request.node(), kMaxNodeFieldBytes);
      if (request.has_node_info()) ApplyNode(request.node_info(), &info_);
      return "";
    }
    if (request.has_node_info()) ApplyNode(request.node_info(), &info_);
    // No nonce: a node update, not an answer.
    if (request.response_nonce().empty()) return "";
    if (request.response_nonce() != sent_nonce_) return "";  // stale answer
    if (request.error_detail().empty()) {
      impl_->acks.Inc();
      info_.acked_version = request.version_info();
      return "";
    }
    impl_->nacks.Inc();
    info_.nacked_version = info_.sent_version;
    info_.last_nack_error = Bounded(request.error_detail(), kMaxNackErrorBytes);
    return absl::StrCat("tandem-ca: policy version ", info_.sent_version, " NACKed by ",
                        info_.spiffe_id, " (node \"", info_.node,
                        "\"): ", request.error_detail(), "\n");
  }

  Impl* const impl_;
  grpc::CallbackServerContext* const context_;
  ServiceAccount account_;   // set in Begin, then read-only
  bool registered_ = false;  // in impl_->streams; set in Begin, then read-only
  // StopStreams is cancelling the call: no Finish, so gRPC keeps the context alive.
  bool cancelling_ ABSL_GUARDED_BY(impl_->mu) = false;
  PolicyRequest request_;
  PolicyResponse response_;
  StreamInfo info_ ABSL_GUARDED_BY(impl_->mu);
  bool got_first_request_ ABSL_GUARDED_BY(impl_->mu) = false;
  bool reader_done_ ABSL_GUARDED_BY(impl_->mu) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(impl_->mu) = false;
  bool finished_ ABSL_GUARDED_BY(impl_->mu) = false;
  bool sent_any_ ABSL_GUARDED_BY(impl_->mu) = false;
  uint64_t seen_generation_ ABSL_GUARDED_BY(impl_->mu) = 0;
  std::string sent_nonce_ ABSL_GUARDED_BY(impl_->mu);
};

grpc::ServerBidiReactor<PolicyRequest, PolicyResponse>* PolicyServer::Impl::StreamPolicy(
    grpc::CallbackServerContext* context) {
  auto* stream = new Stream(this, context);
  stream->Begin();
  return stream;
}

void PolicyServer::Impl::Push(Stream* stream) {
  {
    absl::MutexLock lock(&mu);
    stream->AssertLockHeld();
    if (!stream->WantsLocked(generation)) return;
    if (!stream->PrepareLocked(generation, SnapshotLocked(stream->account()))) return;
  }
  stream->Write();  // outside `mu`: gRPC may run OnWriteDone on this thread
}

void PolicyServer::Impl::PushAll() {
  std::vector<Stream*> writes;
  {
    absl::MutexLock lock(&mu);
    for (Stream* stream : streams) {
      stream->AssertLockHeld();
      if (stream->WantsLocked(generation) &&
          stream->PrepareLocked(generation, SnapshotLocked(stream->account()))) {
        writes.push_back(stream);
      }
    }
  }
  // A stream with a write prepared lives until that write is done. Starting a write
  // seals and sends its TLS record on this thread: 10,000 of them are split over the
  // cores, so a revocation reaches the last stream sooner (bench/ca_load).
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1,
                                            std::max<size_t>(1, writes.size() / 512));
  auto write_share = [&writes, threads](size_t share) {
    for (size_t i = share; i < writes.size(); i += threads) writes[i]->Write();
  };
  std::vector<std::thread> helpers;
  for (size_t share = 1; share < threads; ++share)
    helpers.emplace_back(write_share, share);
  write_share(0);
  for (std::thread& helper : helpers) helper.join();
}

const PolicyServer::Impl::Snapshot& PolicyServer::Impl::SnapshotLocked(
    const ServiceAccount& account) {
  if (cache_generation != generation) {
    cache.clear();
    cache_generation = generation;
  }
  auto [it, inserted] = cache.try_emplace(absl::StrCat(account.ns, "/", account.name));
  if (inserted) {
    it->second.policy = Resolve(account);
    it->second.version = PolicyVersion(it->second.policy);
  }
  return it->second;
}

void PolicyServer::Impl::StopStreams() {
  // Finish and TryCancel run outside `mu`: gRPC may run a reaction on this thread.
  std::vector<std::pair<Stream*, grpc::Status>> finish;
  {
    absl::MutexLock lock(&mu);
    stopping = true;
    for (Stream* stream : streams) {
      stream->AssertLockHeld();
      if (std::optional<grpc::Status> status = stream->FinishIfIdleLocked({})) {
        finish.emplace_back(stream, *status);
      }
    }
  }
  for (auto& [stream, status] : finish) stream->Finish(status);
  finish.clear();
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return streams.empty() && authenticating == 0;
  };
  auto all_done = absl::Condition(&done);
  std::vector<Stream*> cancel;
  {
    // A stream with a write in flight finishes (UNAVAILABLE) when the write is done...
    absl::MutexLock lock(&mu);
    if (mu.AwaitWithTimeout(all_done, absl::Seconds(1))) return;
    // ...unless its client reads no more: cancelled, the write fails.
    for (Stream* stream : streams) {
      stream->AssertLockHeld();
      if (stream->finished()) continue;  // a finished call is gRPC's to end
      stream->BeginCancelLocked();
      cancel.push_back(stream);
    }
  }
  for (Stream* stream : cancel) stream->Cancel();
  {
    absl::MutexLock lock(&mu);
    for (Stream* stream : cancel) {
      stream->AssertLockHeld();
      if (std::optional<grpc::Status> status = stream->EndCancelLocked()) {
        finish.emplace_back(stream, *status);
      }
    }
  }
  for (auto& [stream, status] : finish) stream->Finish(status);
  absl::MutexLock lock(&mu);
  mu.Await(all_done);
}

PolicyServer::PolicyServer(PolicyServerOptions options,
                           const CallerAuthenticator* authenticator)
    : impl_(std::make_unique<Impl>(std::move(options), authenticator)) {}

PolicyServer::~PolicyServer() { Stop(); }

grpc::Service* PolicyServer::service() { return impl_.get(); }

void PolicyServer::Start() {
  if (impl_->options.revocations != nullptr) {
    impl_->options.revocations->SetChangeListener([impl = impl_.get()] {
      absl::MutexLock lock(&impl->mu);
      impl->wake_poll = true;
    });
    impl_->listening = true;
  }
  impl_->poll_thread = std::thread(
      [this, fingerprint = impl_->Fingerprint()] { impl_->Poll(fingerprint); });
}

void PolicyServer::Stop() {
  if (impl_->listening) {
    impl_->options.revocations->SetChangeListener(nullptr);
    impl_->listening = false;
  }
  impl_->StopStreams();
  if (impl_->poll_thread.joinable()) impl_->poll_thread.join();
}

std::vector<PolicyServer::StreamInfo> PolicyServer::Streams() const {
  absl::MutexLock lock(&impl_->mu);
  std::vector<StreamInfo> out;
  for (const Impl::Stream* stream : impl_->streams) {
    stream->AssertLockHeld();
    out.push_back(stream->info());
  }
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
