// tandem-ca-load: the control-plane load harness (issue #17). bench/ca_load.sh runs it
// (`./dev bench-ca`); tests/ run a small smoke of it.
//
//   tandem-ca-load --ca-bin=PATH [--agents=10000] [--per-process=2500]
//       [--accounts=1000] [--first-open=1000] [--open-rate=300]
//       [--rates=1000,2000,3000,4000]
//       [--rate-secs=5] [--revocations=3] [--storm=1] [--storm-deadline=60s]
//       [--out=FILE]        (--rates= , --revocations=0, --storm=0 skip a phase)
//   tandem-ca-load --server-bin=PATH --server-mode=tls|plaintext|fd [same flags]
//
// With --server-bin the server is bench/grpc_stream_floor (a bare gRPC server with
// nothing of tandem in it) instead of tandem-ca, serving with a self-signed
// certificate the openssl CLI makes (tls) or in plaintext (plaintext, fd): phase 1
// only, so a run shows the floor under tandem-ca's per-stream memory.
//
// One driver process (no gRPC in it) starts tandem-ca standalone (token public key,
// policy file, revocation state, admin endpoint) and forks worker processes, each
// simulating up to --per-process agents: agent i speaks for service account
// load/sa-(i % accounts) with a real token signed by the key tandem-ca trusts, over
// its own gRPC+TLS connection (CaChannelArguments, plus a local subchannel pool so
// connections are not shared), with one StreamPolicy stream that ACKs what it
// receives; its renewals go on the same connection, as the agent's CaClient shares
// its channel with the policy relay. A stream that ends reconnects on the agents' own
// schedule (tandem::StreamBackoff, as RunStreamWithBackoff uses it). A renewal is the
// agent's CaClient call (waits for a connecting channel, 10 s timeout) and a failed
// one retries on the agent's schedule (agent::NextRenewal); one that failed without
// reaching the CA retries within agent::RetryWhenReachable's jitter once the agent's
// stream has its first response again (Agent::CaReachable). The driver talks to the
// workers over pipes, one line per command and per answer, and samples tandem-ca's
// CPU and RSS from /proc. Phases, in one run:
//   1. --first-open streams, then every agent's: CA RSS and CPU at each count, and
//      the RSS each stream added between the two counts (KB per stream);
//   2. --revocations revocations (tandem-ca revoke --admin): time from the command
//      until each stream has the response that carries it, p50/p99/max, and
//      tandem-ca's and the workers' CPU per stream meanwhile;
//   3. CreateCertificate at each of --rates per second, open loop, --rate-secs each,
//      each step started once tandem-ca is idle again,
//      with every stream open (CSRs from a pool made before, so the harness does not
//      sign): certificates/s achieved, latency p50/p99 (from when each call was due,
//      so a worker that falls behind its schedule counts), tandem-ca's CPU per
//      certificate, and the workers' CPU (they share the cores with tandem-ca);
//   4. the reconnect storm: every agent's renewal falls due, tandem-ca is SIGKILLed
//      and started again on the same port; time until each agent's stream is back
//      (its first response) and its certificate renewed, the arrival curve,
//      tandem-ca's peak CPU and RSS meanwhile, and the CPU spent until every agent
//      was back, by tandem-ca and by the simulated agents, per TCP connection the
//      kernel accepted (with its listen-queue overflows; the network namespace's
//      counters, exact when the run has one of its own: `unshare -n`), and each
//      second's CPU of both beside the arrival curve.
// Every loop is bounded in count and time; the run fails (exit 1) when a stream or
// a renewal is missing at a phase's deadline. Writes a Markdown section to --out.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/ca_channel.h"
#include "agent/ca_reachability.h"
#include "agent/renewal_policy.h"
#include "common/credential_request.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/process.h"
#include "common/stream_backoff.h"
#include "controlplane/auth/jwt.h"
#include "istio/ca.grpc.pb.h"
#include "tandem/mesh_policy.grpc.pb.h"

namespace {

using istio::v1::auth::IstioCertificateRequest;
using istio::v1::auth::IstioCertificateResponse;
using istio::v1::auth::IstioCertificateService;
using tandem::policy::v1::MeshPolicyService;
using tandem::policy::v1::PolicyRequest;
using tandem::policy::v1::PolicyResponse;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "tandem-ca-load: %s\n", what.c_str());
  std::exit(2);
}

// ---------------------------------------------------------------------------------
// Worker: simulated agents. Threading: gRPC's callback threads run the calls; one
// timer thread starts reconnects and renewals when due; the main thread reads
// commands. `mu` guards every agent's state.

struct WorkerOptions {
  std::string address;
  std::string root_pem;  // empty: plaintext (the floor's plaintext modes)
  std::string signing_key_pem;
  int first = 0;  // global index of this worker's first agent
  int count = 0;
  int accounts = 1000;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  // Main thread: runs commands from `in`, answers on `out`, until "quit" or EOF.
  void Serve(FILE* in, FILE* out);

 private:
  struct Agent {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<MeshPolicyService::Stub> policy;
    std::unique_ptr<IstioCertificateService::Stub> certs;
    const std::string* token = nullptr;
    bool opened = false;      // its stream is wanted (open command)
    bool connecting = false;  // a call or a scheduled reconnect is in flight
    bool up = false;          // its current stream has received a response
    tandem::StreamBackoff backoff;
    int64_t revoked_at = 0;  // when a response carrying `watch_count_` arrived
    int64_t back_at = 0;     // storm: first response of a stream opened after arm
    int64_t renewed_at = 0;  // storm: certificate issued after arm
    int renew_failures = 0;
    bool renew_unreachable = false;  // the last renewal failed without reaching the CA
    bool renew_waiting = false;      // a retry is scheduled, at renew_at
    absl::Time renew_at;
    uint64_t renew_generation = 0;  // a scheduled renewal of an older one is void
  };
  class PolicyCall;
  enum class Event { kConnect, kRenew };

  // `generation`: a kRenew's renew_generation (0 for kConnect).
  void Schedule(absl::Time when, int agent, Event event, uint64_t generation = 0);
  // With `mu_`: the next renewal of `a` at `when`, voiding the one scheduled before.
  void ScheduleRenewalLocked(Agent& a, int agent, absl::Time when);
  void TimerLoop();
  void Connect(int agent);
  void Renew(int agent, uint64_t generation);
  // From PolicyCall's reactions.
  // `started`: when the call that carried it began; `first`: its first response.
  void OnResponse(int agent, const PolicyResponse& response, int64_t started, bool first);
  void OnStreamEnded(int agent, bool received);

  // Opens agents [0, n) at `rate` per second (new ones only).
  std::string Open(int n, double rate, absl::Duration deadline);
  std::string CollectRevocation(int64_t t0, absl::Duration deadline);
  std::string Certificates(double rate, absl::Duration duration);
  std::string CollectStorm(int64_t t0, absl::Duration deadline);

  double Random() {
    std::lock_guard<std::mutex> lock(rng_mu_);
    return uniform_(rng_);
  }

  const WorkerOptions options_;
  std::map<int, std::string> tokens_;  // by account; built before any call
  std::vector<std::string> csr_pool_;  // read-only after construction
  tandem::agent::RenewalPolicy renewal_;

  std::mutex rng_mu_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};

  std::mutex mu_;
  std::condition_variable changed_;  // an agent's state changed
  std::vector<Agent> agents_;
  int watch_count_ = 0;  // revocations a response must carry to count; 0: none
  int64_t storm_armed_at_ = 0;
  std::atomic<bool> quitting_{false};  // read without `mu_` by the timer thread

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  using Due = std::tuple<absl::Time, int, Event, uint64_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> timers_;
  std::thread timer_thread_;
};

// One StreamPolicy call of one agent; deletes itself in OnDone.
class Worker::PolicyCall final
    : public grpc::ClientBidiReactor<PolicyRequest, PolicyResponse> {
 public:
  PolicyCall(Worker* worker, int agent) : worker_(worker), agent_(agent) {}

  void Start(MeshPolicyService::Stub* stub, const std::string& token) {
    started_ = NowMicros();
    context_.AddMetadata("authorization", "Bearer " + token);
    stub->async()->StreamPolicy(&context_, this);
    first_.set_node(absl::StrCat("load-agent-", agent_));
    writing_ = true;
    StartWrite(&first_);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    worker_->OnResponse(agent_, response_, started_, !received_);
    received_ = true;
    PolicyRequest ack;
    ack.set_version_info(response_.version_info());
    ack.set_response_nonce(response_.nonce());
    bool write = false;
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      if (writing_) {
        pending_ = std::move(ack);
        has_pending_ = true;
      } else {
        writing_ = write = true;
        out_ = std::move(ack);
      }
    }
    if (write) StartWrite(&out_);  // out_ is the in-flight write's alone
    StartRead(&response_);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      writing_ = false;
      if (!ok || !has_pending_) return;
      has_pending_ = false;
      writing_ = true;
      out_ = std::move(pending_);
    }
    StartWrite(&out_);
  }

  void OnDone(const grpc::Status&) override {
    worker_->OnStreamEnded(agent_, received_);
    delete this;
  }

 private:
  Worker* const worker_;
  const int agent_;
  grpc::ClientContext context_;
  PolicyRequest first_;
  PolicyResponse response_;
  std::mutex write_mu_;
  bool writing_ = false;
  bool has_pending_ = false;
  PolicyRequest out_;
  PolicyRequest pending_;
  bool received_ = false;  // reactions run one at a time per direction
  int64_t started_ = 0;
};

Worker::Worker(WorkerOptions options) : options_(std::move(options)) {
  for (int i = 0; i < options_.count; ++i) {
    int account = (options_.first + i) % options_.accounts;
    if (tokens_.count(account)) continue;
    absl::StatusOr<std::string> token = tandem::controlplane::MintServiceAccountToken(
        options_.signing_key_pem, {"load", absl::StrCat("sa-", account)}, "istio-ca",
        "tandem-ca-load", absl::Now(), absl::Hours(4));
    if (!token.ok()) Die(std::string(token.status().message()));
    tokens_[account] = *token;
  }
  // Signing a CSR is the agent's cost, not the CA's: made once, before any load.
  for (int i = 0; i < 64; ++i) {
    absl::StatusOr<tandem::PendingCredential> csr = tandem::NewCredentialRequest(
        absl::StrCat("spiffe://cluster.local/ns/load/sa/sa-", i));
    if (!csr.ok()) Die(std::string(csr.status().message()));
    csr_pool_.push_back(csr->csr_pem);
  }
  tandem::agent::CaClientOptions ca;
  ca.address = options_.address;
  ca.root_pem = options_.root_pem;
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options_.root_pem;
  auto credentials = options_.root_pem.empty() ? grpc::InsecureChannelCredentials()
                                               : grpc::SslCredentials(ssl);
  agents_.resize(options_.count);
  for (int i = 0; i < options_.count; ++i) {
    grpc::ChannelArguments args = tandem::agent::CaChannelArguments(ca);
    // One connection per agent, as on separate nodes.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    Agent& agent = agents_[i];
    agent.channel = grpc::CreateCustomChannel(options_.address, credentials, args);
    agent.policy = MeshPolicyService::NewStub(agent.channel);
    agent.certs = IstioCertificateService::NewStub(agent.channel);
    agent.token = &tokens_[(options_.first + i) % options_.accounts];
  }
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

void Worker::Schedule(absl::Time when, int agent, Event event, uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timers_.emplace(when, agent, event, generation);
  }
  timer_cv_.notify_one();
}

void Worker::ScheduleRenewalLocked(Agent& a, int agent, absl::Time when) {
  a.renew_waiting = true;
  a.renew_at = when;
  Schedule(when, agent, Event::kRenew, ++a.renew_generation);
}

void Worker::TimerLoop() {
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (true) {
    if (quitting_.load()) return;
    if (timers_.empty()) {
      timer_cv_.wait_for(lock, std::chrono::milliseconds(100));
      continue;
    }
    auto [when, agent, event, generation] = timers_.top();
    absl::Duration wait = when - absl::Now();
    if (wait > absl::ZeroDuration()) {
      timer_cv_.wait_for(
          lock, absl::ToChronoMicroseconds(std::min(wait, absl::Milliseconds(100))));
      continue;
    }
    timers_.pop();
    lock.unlock();
    if (event == Event::kConnect) {
      Connect(agent);
    } else {
      Renew(agent, generation);
    }
    lock.lock();
  }
}

void Worker::Connect(int agent) {
  Agent& a = agents_[agent];
  if (quitting_.load()) return;
  (new PolicyCall(this, agent))->Start(a.policy.get(), *a.token);
}

void Worker::OnResponse(int agent, const PolicyResponse& response, int64_t started,
                        bool first) {
  int64_t now = NowMicros();
  std::lock_guard<std::mutex> lock(mu_);
  Agent& a = agents_[agent];
  a.up = true;
  // Agent::CaReachable: the CA answered on the connection the renewal uses.
  if (first && a.renew_waiting && a.renew_unreachable && !quitting_) {
    ScheduleRenewalLocked(
        a, agent,
        tandem::agent::RetryWhenReachable(renewal_, a.renew_at, absl::Now(), Random()));
  }
  // Back: a stream opened after the storm began has its first response.
  if (storm_armed_at_ != 0 && started > storm_armed_at_ && a.back_at == 0) {
    a.back_at = now;
  }
  if (watch_count_ > 0 && a.revoked_at == 0 &&
      response.policy().revocations_size() >= watch_count_) {
    a.revoked_at = now;
  }
  changed_.notify_all();
}

void Worker::OnStreamEnded(int agent, bool received) {
  std::lock_guard<std::mutex> lock(mu_);
  Agent& a = agents_[agent];
  a.up = false;
  if (quitting_) return;
  // RunStreamWithBackoff's schedule: a stream that received something resets it.
  if (received) a.backoff.Reset();
  absl::Duration wait = a.backoff.Next(Random());
  Schedule(absl::Now() + wait, agent, Event::kConnect);
  changed_.notify_all();
}

void Worker::Renew(int agent, uint64_t generation) {
  Agent& a = agents_[agent];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation != a.renew_generation || quitting_) return;  // brought forward
    a.renew_waiting = false;
  }
  struct Call {
    grpc::ClientContext context;
    IstioCertificateRequest request;
    IstioCertificateResponse response;
  };
  auto call = std::make_shared<Call>();
  call->context.AddMetadata("authorization", "Bearer " + *a.token);
  // CaClient's call: waits for a (re)connecting channel, for its 10 s timeout.
  call->context.set_wait_for_ready(true);
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  call->request.set_csr(csr_pool_[agent % csr_pool_.size()]);
  call->request.set_validity_duration(3600);
  a.certs->async()->CreateCertificate(
      &call->context, &call->request, &call->response,
      [this, agent, call](grpc::Status status) {
        std::lock_guard<std::mutex> lock(mu_);
        Agent& b = agents_[agent];
        b.renew_unreachable = false;
        if (status.ok()) {
          b.renew_failures = 0;
          if (b.renewed_at == 0) b.renewed_at = NowMicros();
          changed_.notify_all();
          return;
        }
        if (quitting_) return;
        // The agent's own retry schedule: it holds a certificate issued half a
        // lifetime (1 h) ago, so retries are capped by the validity left; one that
        // did not reach the CA is brought forward when its stream is back
        // (OnResponse).
        ++b.renew_failures;
        b.renew_unreachable =
            !tandem::agent::ReachedCa(static_cast<absl::StatusCode>(status.error_code()));
        absl::Time now = absl::Now();
        ScheduleRenewalLocked(
            b, agent,
            tandem::agent::NextRenewal(renewal_, now - absl::Minutes(30),
                                       now + absl::Minutes(30), now, b.renew_failures,
                                       Random()));
      });
}

std::string Worker::Open(int n, double rate, absl::Duration deadline) {
  n = std::min(n, options_.count);
  {
    // Agents start over time, as pods do: all at once is the storm's case.
    std::lock_guard<std::mutex> lock(mu_);
    absl::Time at = absl::Now();
    for (int i = 0; i < n; ++i) {
      if (agents_[i].opened) continue;
      agents_[i].opened = true;
      Schedule(at, i, Event::kConnect);
      at += absl::Seconds(1 / rate);
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto all_up = [&] {
    for (int i = 0; i < n; ++i) {
      if (!agents_[i].up) return false;
    }
    return true;
  };
  changed_.wait_for(lock, absl::ToChronoMicroseconds(deadline), all_up);
  int up = 0;
  for (int i = 0; i < n; ++i) up += agents_[i].up;
  return absl::StrCat("opened ", up, " ", n);
}

// Answers "rev GOT WANTED lat_us...": latencies from t0 of the agents whose stream was
// up, each to the first response carrying watch_count_ revocations.
std::string Worker::CollectRevocation(int64_t t0, absl::Duration deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto all = [&] {
    for (const Agent& a : agents_) {
      if (a.opened && a.revoked_at == 0) return false;
    }
    return true;
  };
  changed_.wait_for(lock, absl::ToChronoMicroseconds(deadline), all);
  std::vector<int64_t> lat;
  int wanted = 0;
  for (Agent& a : agents_) {
    if (!a.opened) continue;
    ++wanted;
    if (a.revoked_at != 0) lat.push_back(a.revoked_at - t0);
    a.revoked_at = 0;
  }
  watch_count_ = 0;
  return absl::StrCat("rev ", lat.size(), " ", wanted, " ", absl::StrJoin(lat, " "));
}

// Open loop at `rate` per second for `duration`, round-robin over the agents'
// connections. Answers "certs SENT OK FAILED lat_us...".
std::string Worker::Certificates(double rate, absl::Duration duration) {
  struct Call {
    grpc::ClientContext context;
    IstioCertificateRequest request;
    IstioCertificateResponse response;
    int64_t due;  // when the open loop's schedule says it is sent (µs)
  };
  std::mutex result_mu;
  std::condition_variable done_cv;
  std::vector<int64_t> lat;
  int ok = 0, failed = 0, in_flight = 0;
  int64_t sent = 0;
  const absl::Time start = absl::Now();
  const int64_t start_us = absl::ToUnixMicros(start);
  const absl::Time end = start + duration;
  while (true) {
    absl::Time now = absl::Now();
    if (now >= end) break;
    int64_t due = static_cast<int64_t>(absl::ToDoubleSeconds(now - start) * rate);
    for (; sent < due; ++sent) {
      int agent = static_cast<int>(sent % options_.count);
      auto call = std::make_shared<Call>();
      call->context.AddMetadata("authorization", "Bearer " + *agents_[agent].token);
      call->context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::seconds(10));
      call->request.set_csr(csr_pool_[sent % csr_pool_.size()]);
      call->request.set_validity_duration(3600);
      // Latency counts from when the call was due, not from when this loop got to it:
      // a harness that falls behind shows in the figures rather than hiding in them.
      call->due = start_us + static_cast<int64_t>(static_cast<double>(sent) * 1e6 / rate);
      {
        std::lock_guard<std::mutex> lock(result_mu);
        ++in_flight;
      }
      agents_[agent].certs->async()->CreateCertificate(
          &call->context, &call->request, &call->response,
          [&, call](grpc::Status status) {
            int64_t took = NowMicros() - call->due;
            std::lock_guard<std::mutex> lock(result_mu);
            if (status.ok()) {
              ++ok;
              lat.push_back(took);
            } else {
              ++failed;
            }
            if (--in_flight == 0) done_cv.notify_all();
          });
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  // Every call has a 10 s deadline: this wait ends.
  std::unique_lock<std::mutex> lock(result_mu);
  done_cv.wait(lock, [&] { return in_flight == 0; });
  return absl::StrCat("certs ", sent, " ", ok, " ", failed, " ", absl::StrJoin(lat, " "));
}

// Answers "storm AGENTS BACK RENEWED back_us... | renewed_us...", from t0 (the kill).
std::string Worker::CollectStorm(int64_t t0, absl::Duration deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto all = [&] {
    for (const Agent& a : agents_) {
      if (a.opened && (a.back_at == 0 || a.renewed_at == 0)) return false;
    }
    return true;
  };
  changed_.wait_for(lock, absl::ToChronoMicroseconds(deadline), all);
  std::vector<int64_t> back, renewed;
  int wanted = 0;
  for (const Agent& a : agents_) {
    if (!a.opened) continue;
    ++wanted;
    if (a.back_at != 0) back.push_back(a.back_at - t0);
    if (a.renewed_at != 0) renewed.push_back(a.renewed_at - t0);
  }
  return absl::StrCat("storm ", wanted, " ", back.size(), " ", renewed.size(), " ",
                      absl::StrJoin(back, " "), " | ", absl::StrJoin(renewed, " "));
}

void Worker::Serve(FILE* in, FILE* out) {
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, in) > 0) {
    std::vector<std::string> words =
        absl::StrSplit(absl::StripAsciiWhitespace(line), ' ');
    const std::string& command = words[0];
    auto number = [&](size_t i) {
      double value = 0;
      if (words.size() <= i || !absl::SimpleAtod(words[i], &value)) {
        Die(absl::StrCat("worker: bad command: ", line));
      }
      return value;
    };
    std::string answer;
    if (command == "open") {
      answer = Open(static_cast<int>(number(1)), number(2), absl::Seconds(number(3)));
    } else if (command == "watch") {
      std::lock_guard<std::mutex> lock(mu_);
      watch_count_ = static_cast<int>(number(1));
      answer = "watching";
    } else if (command == "collect-rev") {
      answer =
          CollectRevocation(static_cast<int64_t>(number(1)), absl::Seconds(number(2)));
    } else if (command == "certs") {
      answer = Certificates(number(1), absl::Seconds(number(2)));
    } else if (command == "arm-storm") {
      // Every agent's renewal falls due as the CA dies: the worst case.
      std::lock_guard<std::mutex> lock(mu_);
      storm_armed_at_ = NowMicros();
      for (size_t i = 0; i < agents_.size(); ++i) {
        agents_[i].back_at = 0;
        agents_[i].renewed_at = 0;
      }
      answer = "armed";
    } else if (command == "renew-all") {
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < options_.count; ++i) {
        if (agents_[i].opened) ScheduleRenewalLocked(agents_[i], i, absl::Now());
      }
      answer = "renewing";
    } else if (command == "collect-storm") {
      answer = CollectStorm(static_cast<int64_t>(number(1)), absl::Seconds(number(2)));
    } else if (command == "quit") {
      break;
    } else {
      Die(absl::StrCat("worker: unknown command: ", line));
    }
    std::fprintf(out, "%s\n", answer.c_str());
    std::fflush(out);
  }
  free(line);
  quitting_ = true;
  timer_cv_.notify_all();
  timer_thread_.join();
  // Streams end with the process: exiting is quicker than cancelling 2,500 calls.
  std::fflush(out);
  _exit(0);
}

// ---------------------------------------------------------------------------------
// Driver.

struct Proc {
  pid_t pid = -1;
  FILE* to = nullptr;
  FILE* from = nullptr;
};

// Sends `command` to every worker, then reads every answer: they work in parallel.
std::vector<std::string> AskAll(std::vector<Proc>& workers, const std::string& command) {
  for (Proc& w : workers) {
    std::fprintf(w.to, "%s\n", command.c_str());
    std::fflush(w.to);
  }
  std::vector<std::string> answers;
  for (Proc& w : workers) {
    char* line = nullptr;
    size_t cap = 0;
    if (getline(&line, &cap, w.from) <= 0) Die("a worker died (see its stderr)");
    answers.emplace_back(absl::StripTrailingAsciiWhitespace(line));
    free(line);
  }
  return answers;
}

std::vector<int64_t> Numbers(absl::string_view text) {
  std::vector<int64_t> out;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    int64_t v;
    if (absl::SimpleAtoi(word, &v)) out.push_back(v);
  }
  return out;
}

double Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(i, v.size() - 1)]);
}

// tandem-ca's CPU time (s) and RSS (MB) from /proc.
struct Usage {
  double cpu_seconds = 0;
  double rss_mb = 0;
  double hwm_mb = 0;
  int threads = 0;
};
Usage UsageOf(pid_t pid) {
  Usage u;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f = absl::StrSplit(text.substr(close + 2), ' ');
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command.
    if (f.size() > 12) {
      u.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) /
                      static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    auto kb = [&](const char* key) {
      return std::stod(line.substr(std::strlen(key))) / 1024.0;
    };
    if (line.rfind("VmRSS:", 0) == 0) u.rss_mb = kb("VmRSS:");
    if (line.rfind("VmHWM:", 0) == 0) u.hwm_mb = kb("VmHWM:");
    if (line.rfind("Threads:", 0) == 0) u.threads = std::stoi(line.substr(8));
  }
  return u;
}

// Machine-wide TCP counters by "Tcp:Name" / "TcpExt:Name" (/proc/net/snmp and
// /proc/net/netstat: pairs of lines, names then values): other processes count too.
std::map<std::string, int64_t> TcpCounters() {
  std::map<std::string, int64_t> out;
  for (const char* file : {"/proc/net/snmp", "/proc/net/netstat"}) {
    std::ifstream in(file);
    std::string names, values;
    while (std::getline(in, names) && std::getline(in, values)) {
      std::vector<std::string> n = absl::StrSplit(names, ' ');
      std::vector<std::string> v = absl::StrSplit(values, ' ');
      if (n.empty() || v.empty() || n[0] != v[0]) continue;
      for (size_t i = 1; i < n.size() && i < v.size(); ++i) {
        int64_t x = 0;
        if (absl::SimpleAtoi(v[i], &x)) out[n[0] + n[i]] = x;
      }
    }
  }
  return out;
}

// The port of the first "listening listener=NAME address=HOST:PORT" line in `log` (the
// text format of tandem's log::Listening; grpc_stream_floor prints the same), 0 if none.
int LoggedPort(const std::string& log, const std::string& listener) {
  absl::StatusOr<std::string> text = tandem::ReadFileToString(log);
  if (!text.ok()) return 0;
  const std::string marker = "listening listener=" + listener + " address=";
  size_t at = text->find(marker);
  if (at == std::string::npos) return 0;
  std::string address = text->substr(at + marker.size());
  address = address.substr(0, address.find_first_of(" \n"));
  int port = 0;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return 0;
  }
  return port;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int Run(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = Spawn(argv, log);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Driver {
 public:
  Driver(const tandem::Flags& flags) : flags_(flags) {}
  int Main();

 private:
  void StartCa();
  bool WaitForCa(absl::Duration deadline);
  void Sample(absl::Duration window, Usage* at_end, double* cpu_percent);
  // Waits, at most 10 s, until tandem-ca used at most one clock tick of CPU in 200 ms,
  // so a load step starts from an idle CA and not behind the last phase's tail (after
  // a revocation, 10,000 ACKs on gRPC's two callback threads); returns the wait.
  absl::Duration SettleCa();
  // Stops the workers and tandem-ca, writes the report; the exit code.
  int Finish(std::vector<Proc>& workers);

  const tandem::Flags& flags_;
  std::string dir_;
  std::string ca_bin_;
  // --server-bin: the floor server and its mode instead of tandem-ca.
  std::string server_bin_;
  std::string server_mode_;
  // 0 until the first start: the server binds port 0 and logs the port it got; a
  // restart binds the same one again (the agents' address).
  int port_ = 0;
  int admin_port_ = 0;
  std::string log_;  // the server's stdout and stderr
  pid_t ca_ = -1;
  std::string report_;
  bool failed_ = false;
};

absl::Duration Driver::SettleCa() {
  const absl::Time start = absl::Now();
  const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  double last = UsageOf(ca_).cpu_seconds;
  while (absl::Now() - start < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(200));
    const double now = UsageOf(ca_).cpu_seconds;
    if (now - last <= tick * 1.01) break;
    last = now;
  }
  return absl::Now() - start;
}

void Driver::StartCa() {
  if (!server_bin_.empty()) {
    log_ = dir_ + "/server.log";
    ca_ = Spawn({server_bin_, absl::StrCat("--listen=127.0.0.1:", port_),
                 "--mode=" + server_mode_, "--cert=" + dir_ + "/floor.crt",
                 "--key=" + dir_ + "/floor.key"},
                log_);
    return;
  }
  log_ = dir_ + "/tandem-ca.log";
  ca_ = Spawn({ca_bin_, "serve", "--root-dir=" + dir_ + "/root",
               absl::StrCat("--listen=127.0.0.1:", port_),
               absl::StrCat("--admin=127.0.0.1:", admin_port_),
               "--metrics=", "--token-public-key=" + dir_ + "/token.pub",
               "--policy-file=" + dir_ + "/mesh-policy.yaml",
               "--state-dir=" + dir_ + "/state"},
              log_);
}

// Waits until tandem-ca's port accepts a connection.
bool Driver::WaitForCa(absl::Duration deadline) {
  absl::Time end = absl::Now() + deadline;
  // First start: the ports it logs (tandem-ca logs the admin port after the gRPC one).
  while (port_ == 0 || (server_bin_.empty() && admin_port_ == 0)) {
    port_ = LoggedPort(log_, "grpc");
    if (server_bin_.empty()) admin_port_ = LoggedPort(log_, "admin");
    if (port_ != 0 && (!server_bin_.empty() || admin_port_ != 0)) break;
    if (absl::Now() >= end || waitpid(ca_, nullptr, WNOHANG) == ca_) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  while (absl::Now() < end) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (up) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// Measures tandem-ca's CPU over `window`.
void Driver::Sample(absl::Duration window, Usage* at_end, double* cpu_percent) {
  Usage before = UsageOf(ca_);
  absl::Time start = absl::Now();
  absl::SleepFor(window);
  *at_end = UsageOf(ca_);
  *cpu_percent = 100.0 * (at_end->cpu_seconds - before.cpu_seconds) /
                 absl::ToDoubleSeconds(absl::Now() - start);
}

int Driver::Main() {
  ca_bin_ = flags_.Get("ca-bin");
  server_bin_ = flags_.Get("server-bin");
  server_mode_ = flags_.Get("server-mode", "tls");
  if (ca_bin_.empty() == server_bin_.empty()) {
    Die("one of --ca-bin=PATH (tandem-ca) and --server-bin=PATH (the floor) is required");
  }
  if (server_mode_ != "tls" && server_mode_ != "plaintext" && server_mode_ != "fd") {
    Die("--server-mode must be tls, plaintext or fd");
  }
  int agents = std::stoi(flags_.Get("agents", "10000"));
  int per_process = std::stoi(flags_.Get("per-process", "2500"));
  int accounts = std::stoi(flags_.Get("accounts", "1000"));
  int first_open = std::min(agents, std::stoi(flags_.Get("first-open", "1000")));
  int revocations = std::stoi(flags_.Get("revocations", "3"));
  double rate_secs = std::stod(flags_.Get("rate-secs", "5"));
  std::vector<std::string> rates =
      absl::StrSplit(flags_.Get("rates", "1000,2000,3000,4000"), ',', absl::SkipEmpty());
  const bool storm = flags_.Get("storm", "1") != "0";
  double open_rate = std::stod(flags_.Get("open-rate", "300"));
  absl::StatusOr<absl::Duration> storm_deadline =
      flags_.GetDuration("storm-deadline", absl::Seconds(60));
  if (!storm_deadline.ok()) Die(std::string(storm_deadline.status().message()));
  const int workers_n = (agents + per_process - 1) / per_process;

  // tandem-ca holds a socket per agent: its soft limit up to the hard one.
  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);
  if (fds.rlim_max < static_cast<rlim_t>(agents + 1000)) {
    Die(absl::StrCat("RLIMIT_NOFILE hard limit ", fds.rlim_max, " < agents + 1000"));
  }

  char tmpl[] = "/tmp/tandem-ca-load-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  dir_ = tmpl;
  absl::StatusOr<tandem::PendingCredential> key =
      tandem::NewCredentialRequest("spiffe://cluster.local/ns/load/sa/token-issuer");
  if (!key.ok()) Die(std::string(key.status().message()));
  absl::StatusOr<std::string> pub =
      tandem::controlplane::PublicKeyPemOf(key->private_key_pem);
  if (!pub.ok()) Die(std::string(pub.status().message()));
  std::ofstream(dir_ + "/token.pub") << *pub;
  // A policy with a rule per 100 service accounts, so responses are not trivial.
  {
    std::ofstream policy(dir_ + "/mesh-policy.yaml");
    policy << "defaults:\n  inboundMode: STRICT\nworkloads:\n";
    for (int a = 0; a < accounts; a += 100) {
      policy << "  - namespace: load\n    serviceAccount: sa-" << a
             << "\n    inboundPorts: [{port: 8080, allow: "
                "[\"spiffe://cluster.local/ns/load/*\"]}]\n";
    }
  }
  if (!server_bin_.empty()) {
    // The name and address the agents' channels check (CaChannelArguments).
    int rc =
        Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir_ + "/floor.key",
             "-out", dir_ + "/floor.crt", "-subj", "/CN=tandem-ca", "-days", "2",
             "-addext", "subjectAltName=DNS:tandem-ca,IP:127.0.0.1"},
            dir_ + "/openssl.log");
    if (rc != 0) Die("openssl req failed: see " + dir_ + "/openssl.log");
  }
  StartCa();
  if (!WaitForCa(absl::Seconds(20))) Die("the server did not start: see " + dir_);
  absl::StatusOr<std::string> root = tandem::ReadFileToString(
      server_bin_.empty() ? dir_ + "/root/ca-cert.pem" : dir_ + "/floor.crt");
  if (!root.ok()) Die(std::string(root.status().message()));
  if (server_mode_ != "tls") root->clear();  // plaintext agents

  // Workers fork before this process touches gRPC (it never does).
  std::vector<Proc> workers;
  for (int w = 0; w < workers_n; ++w) {
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0) Die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      close(to[1]);
      close(from[0]);
      WorkerOptions options{absl::StrCat("127.0.0.1:", port_),
                            *root,
                            key->private_key_pem,
                            w * per_process,
                            std::min(per_process, agents - w * per_process),
                            accounts};
      Worker worker(options);
      worker.Serve(fdopen(to[0], "r"), fdopen(from[1], "w"));
      _exit(0);
    }
    close(to[0]);
    close(from[1]);
    workers.push_back({pid, fdopen(to[1], "w"), fdopen(from[0], "r")});
  }
  auto per_worker = [&](int total, int w) {
    return std::clamp(total - w * per_process, 0, per_process);
  };
  std::string load = [] {
    double l[3];
    return getloadavg(l, 3) == 3 ? absl::StrFormat("%.2f %.2f %.2f", l[0], l[1], l[2])
                                 : std::string("?");
  }();
  if (!server_bin_.empty()) {
    report_ += absl::StrFormat(
        "Bare gRPC floor, `grpc_stream_floor --mode=%s` (bench/grpc_stream_floor.cc: no "
        "tandem code; %s): %d agents in %d worker processes; load average at start "
        "%s.\n\n",
        server_mode_,
        server_mode_ == "tls"  ? "gRPC's TLS credentials, as tandem-ca"
        : server_mode_ == "fd" ? "plaintext connections handed in by fd"
                               : "plaintext listener",
        agents, workers_n, load);
  } else {
    report_ += absl::StrFormat(
        "%d simulated agents in %d worker processes of at most %d (each agent: its own "
        "gRPC+TLS connection and StreamPolicy stream, a token of one of %d service "
        "accounts); load average at start %s.\n\n",
        agents, workers_n, per_process, accounts, load);
  }

  // --- 1. streams: RSS and CPU at first_open and at every agent ---
  report_ += absl::StrFormat(
      "| open policy streams | time to open | %s RSS | KB per stream | threads | CPU "
      "(idle streams) |\n"
      "|---|---|---|---|---|---|\n",
      server_bin_.empty() ? "tandem-ca" : "server");
  // KB per stream: the RSS the streams since the previous row added, each.
  double last_rss_mb = 0;
  int last_up = 0;
  for (int total : {first_open, agents}) {
    absl::Time start = absl::Now();
    int up = 0;
    for (int w = 0; w < workers_n; ++w) {
      std::fprintf(workers[w].to, "open %d %.3f 180\n", per_worker(total, w),
                   open_rate / workers_n);
      std::fflush(workers[w].to);
    }
    for (int w = 0; w < workers_n; ++w) {
      char* line = nullptr;
      size_t cap = 0;
      if (getline(&line, &cap, workers[w].from) <= 0) Die("a worker died");
      up += static_cast<int>(Numbers(line + 6).at(0));
      free(line);
    }
    double open_s = absl::ToDoubleSeconds(absl::Now() - start);
    if (up < total) {
      failed_ = true;
      std::fprintf(stderr, "only %d of %d streams opened\n", up, total);
    }
    absl::SleepFor(absl::Seconds(1));
    Usage u;
    double cpu;
    Sample(absl::Seconds(2), &u, &cpu);
    std::string per_stream = "–";
    if (last_up > 0 && up > last_up) {
      per_stream =
          absl::StrFormat("%.1f", (u.rss_mb - last_rss_mb) * 1024 / (up - last_up));
    }
    report_ += absl::StrFormat("| %d | %.1f s | %.0f MB | %s | %d | %.1f %% |\n", up,
                               open_s, u.rss_mb, per_stream, u.threads, cpu);
    std::printf("streams %d open in %.1f s: RSS %.0f MB (%s KB/stream), CPU %.1f%%\n", up,
                open_s, u.rss_mb, per_stream.c_str(), cpu);
    std::fflush(stdout);
    last_rss_mb = u.rss_mb;
    last_up = up;
  }
  // The floor is measured for memory only.
  if (!server_bin_.empty()) return Finish(workers);

  // The simulated agents share the cores with tandem-ca: their CPU beside the CA's
  // says how much of a figure is theirs (in a cluster they run elsewhere).
  auto workers_cpu = [&workers] {
    double seconds = 0;
    for (const Proc& w : workers) seconds += UsageOf(w.pid).cpu_seconds;
    return seconds;
  };

  // --- 2. revocation fan-out ---
  report_ +=
      "\n| revocation | streams reached | p50 | p99 | max | tandem-ca CPU per stream | "
      "agents' CPU per stream |\n|---|---|---|---|---|---|---|\n";
  for (int r = 1; r <= revocations; ++r) {
    AskAll(workers, absl::StrCat("watch ", r));
    const double ca_before = UsageOf(ca_).cpu_seconds;
    const double agents_before = workers_cpu();
    int64_t t0 = NowMicros();
    std::string not_after = absl::FormatTime(
        "%Y-%m-%dT%H:%M:%SZ", absl::Now() + absl::Hours(1), absl::UTCTimeZone());
    int rc = Run({ca_bin_, "revoke", absl::StrCat("--admin=127.0.0.1:", admin_port_),
                  absl::StrFormat("--serial=%x", 0xC0DE00 + r),
                  "--not-after=" + not_after, "--reason=ca-load"},
                 dir_ + "/revoke.log");
    if (rc != 0) Die("tandem-ca revoke failed: see " + dir_ + "/revoke.log");
    std::vector<int64_t> lat;
    int wanted = 0;
    for (const std::string& a :
         AskAll(workers, absl::StrCat("collect-rev ", t0, " 20"))) {
      std::vector<int64_t> n = Numbers(absl::string_view(a).substr(4));
      wanted += static_cast<int>(n.at(1));
      lat.insert(lat.end(), n.begin() + 2, n.end());
    }
    if (static_cast<int>(lat.size()) < wanted) failed_ = true;
    // CPU from the command until tandem-ca is idle again: each stream's write, the
    // agent's read and ACK, tandem-ca's read of the ACK (after the last stream has the
    // revocation, its ACKs take tandem-ca a few hundred ms more), and the revoke
    // command's own start.
    SettleCa();
    const double streams = std::max<double>(1, static_cast<double>(lat.size()));
    const double ca_us = 1e6 * (UsageOf(ca_).cpu_seconds - ca_before) / streams;
    const double agents_us = 1e6 * (workers_cpu() - agents_before) / streams;
    report_ += absl::StrFormat(
        "| %d | %d of %d | %.0f ms | %.0f ms | %.0f ms | %.0f µs | %.0f µs |\n", r,
        lat.size(), wanted, Percentile(lat, 0.5) / 1000, Percentile(lat, 0.99) / 1000,
        Percentile(lat, 1.0) / 1000, ca_us, agents_us);
    std::printf(
        "revocation %d: %zu of %d streams, p99 %.0f ms; CPU per stream: tandem-ca %.0f "
        "us, agents %.0f us\n",
        r, lat.size(), wanted, Percentile(lat, 0.99) / 1000, ca_us, agents_us);
    std::fflush(stdout);
  }

  // --- 3. certificates at fixed offered loads ---
  report_ += absl::StrFormat(
      "\n| offered | achieved | failed | p50 | p99 | tandem-ca CPU | tandem-ca CPU per "
      "certificate | workers' CPU |\n"
      "|---|---|---|---|---|---|---|---|\n");
  std::vector<std::string> settled;
  for (const std::string& rate_text : rates) {
    double rate = std::stod(rate_text);
    settled.push_back(absl::StrCat(absl::ToInt64Milliseconds(SettleCa()), " ms"));
    Usage before = UsageOf(ca_);
    double workers_before = workers_cpu();
    absl::Time start = absl::Now();
    std::vector<int64_t> lat;
    int64_t ok = 0, bad = 0;
    for (const std::string& a : AskAll(
             workers, absl::StrFormat("certs %.3f %.3f", rate / workers_n, rate_secs))) {
      // "certs SENT OK FAILED lat...": every call sent is OK or FAILED by then.
      std::vector<int64_t> n = Numbers(absl::string_view(a).substr(6));
      ok += n.at(1);
      bad += n.at(2);
      lat.insert(lat.end(), n.begin() + 3, n.end());
    }
    double wall = absl::ToDoubleSeconds(absl::Now() - start);
    Usage after = UsageOf(ca_);
    double ca_seconds = after.cpu_seconds - before.cpu_seconds;
    double cpu = 100.0 * ca_seconds / wall;
    double workers_percent = 100.0 * (workers_cpu() - workers_before) / wall;
    // Per call answered (issued or refused); the streams' idle cost is in it (~0).
    double per_cert_us =
        ok + bad > 0 ? 1e6 * ca_seconds / static_cast<double>(ok + bad) : 0;
    // Achieved: issued per second of the offered window (the tail's wait included).
    report_ += absl::StrFormat(
        "| %.0f/s | %.0f/s | %d | %.1f ms | %.1f ms | %.0f %% | %.0f µs | %.0f %% |\n",
        rate, static_cast<double>(ok) / wall, bad, Percentile(lat, 0.5) / 1000,
        Percentile(lat, 0.99) / 1000, cpu, per_cert_us, workers_percent);
    std::printf("certs offered %.0f/s: %.0f/s, p50 %.1f ms, p99 %.1f ms, %" PRId64
                " failed; tandem-ca %.0f%% CPU, %.0f us/cert; workers %.0f%% CPU\n",
                rate, static_cast<double>(ok) / wall, Percentile(lat, 0.5) / 1000,
                Percentile(lat, 0.99) / 1000, bad, cpu, per_cert_us, workers_percent);
    std::fflush(stdout);
  }
  if (!rates.empty()) {
    report_ += absl::StrCat(
        "\nEach load step started once tandem-ca was idle (at most one clock tick of CPU "
        "in 200 ms; `SettleCa`), after waiting ",
        absl::StrJoin(settled, ", "), ".\n");
  }

  // --- 4. the reconnect storm ---
  if (!storm) return Finish(workers);
  AskAll(workers, "arm-storm");
  const double workers_cpu_before = workers_cpu();
  std::map<std::string, int64_t> tcp_before = TcpCounters();
  int64_t t_kill = NowMicros();
  kill(ca_, SIGKILL);
  waitpid(ca_, nullptr, 0);
  // Renewals fall due while the CA is down: each fails and retries on its schedule.
  AskAll(workers, "renew-all");
  StartCa();
  if (!WaitForCa(absl::Seconds(20))) Die("tandem-ca did not restart: see " + dir_);
  double restart_s = static_cast<double>(NowMicros() - t_kill) / 1e6;
  // Samples the restarted CA every 100 ms while the workers wait for their agents.
  std::atomic<bool> sampling{true};
  double peak_cpu = 0, peak_rss = 0;
  // tandem-ca's and the workers' CPU seconds by second after the kill (each sample's
  // to its end's second).
  std::map<int64_t, double> ca_cpu_by_second, agents_cpu_by_second;
  std::thread sampler([&] {
    Usage last = UsageOf(ca_);
    double last_agents = workers_cpu();
    absl::Time last_at = absl::Now();
    while (sampling.load()) {
      absl::SleepFor(absl::Milliseconds(250));
      Usage u = UsageOf(ca_);
      absl::Time now = absl::Now();
      peak_cpu = std::max(peak_cpu, 100.0 * (u.cpu_seconds - last.cpu_seconds) /
                                        absl::ToDoubleSeconds(now - last_at));
      peak_rss = std::max(peak_rss, u.rss_mb);
      const int64_t second = (NowMicros() - t_kill) / 1'000'000;
      ca_cpu_by_second[second] += u.cpu_seconds - last.cpu_seconds;
      const double agents = workers_cpu();
      agents_cpu_by_second[second] += agents - last_agents;
      last_agents = agents;
      last = u;
      last_at = now;
    }
  });
  std::vector<int64_t> back, renewed;
  int wanted = 0;
  for (const std::string& a :
       AskAll(workers, absl::StrCat("collect-storm ", t_kill, " ",
                                    absl::ToInt64Seconds(*storm_deadline)))) {
    std::vector<std::string> halves = absl::StrSplit(a.substr(6), " | ");
    std::vector<int64_t> n = Numbers(halves[0]);
    wanted += static_cast<int>(n.at(0));
    back.insert(back.end(), n.begin() + 3, n.end());
    std::vector<int64_t> r = Numbers(halves.size() > 1 ? halves[1] : "");
    renewed.insert(renewed.end(), r.begin(), r.end());
  }
  sampling = false;
  sampler.join();
  // The restarted tandem-ca's CPU is all the storm's (its start-up is a few ms).
  const double storm_s = static_cast<double>(NowMicros() - t_kill) / 1e6;
  const double ca_cpu = UsageOf(ca_).cpu_seconds;
  const double agents_cpu = workers_cpu() - workers_cpu_before;
  std::map<std::string, int64_t> tcp_after = TcpCounters();
  auto tcp = [&](const std::string& name) { return tcp_after[name] - tcp_before[name]; };
  const int64_t accepted = std::max<int64_t>(tcp("Tcp:PassiveOpens"), 1);
  // No agent gives up (the agent's retry loops never end): one not back or not renewed
  // at the deadline is still waiting out its backoff, and fails the run.
  const int not_back = wanted - static_cast<int>(back.size());
  const int not_renewed = wanted - static_cast<int>(renewed.size());
  if (not_back > 0 || not_renewed > 0) failed_ = true;
  report_ += absl::StrFormat(
      "\nReconnect storm: every agent's renewal due, tandem-ca SIGKILLed with %d streams "
      "open and started again (listening %.2f s after the kill).\n\n"
      "| | agents | p50 | p99 | all (max) |\n|---|---|---|---|---|\n"
      "| stream back (first response) | %d of %d | %.1f s | %.1f s | %.1f s |\n"
      "| certificate renewed | %d of %d | %.1f s | %.1f s | %.1f s |\n\n"
      "At the %d s deadline: %d not back, %d not yet renewed (still retrying: the "
      "agents never give up). tandem-ca while they came back: peak "
      "CPU %.0f %% (250 ms samples; 200 %% is both cores), peak RSS %.0f MB.\n\n"
      "CPU (utime+stime) from the kill until every agent was back and renewed (%.1f "
      "s): tandem-ca %.1f s, the simulated agents %.1f s, per connection accepted "
      "%.2f ms and %.2f ms. The kernel accepted %" PRId64
      " TCP connections "
      "meanwhile, with %" PRId64 " listen-queue overflows, %" PRId64
      " connection "
      "requests dropped at the listener and %" PRId64
      " SYNs retransmitted (counters "
      "of the network namespace: other processes in it count too; `unshare -n` gives "
      "the harness one of its own).\n\n"
      "Arrival curve (streams back and certificates renewed, by second after the "
      "kill):\n\n"
      "| second | back in it | back by its end | renewed in it | tandem-ca CPU | agents' "
      "CPU |\n|---|---|---|---|---|---|\n",
      wanted, restart_s, static_cast<int>(back.size()), wanted,
      Percentile(back, 0.5) / 1e6, Percentile(back, 0.99) / 1e6,
      Percentile(back, 1.0) / 1e6, static_cast<int>(renewed.size()), wanted,
      Percentile(renewed, 0.5) / 1e6, Percentile(renewed, 0.99) / 1e6,
      Percentile(renewed, 1.0) / 1e6,
      static_cast<int>(absl::ToInt64Seconds(*storm_deadline)), not_back, not_renewed,
      peak_cpu, peak_rss, storm_s, ca_cpu, agents_cpu,
      1000 * ca_cpu / static_cast<double>(accepted),
      1000 * agents_cpu / static_cast<double>(accepted), tcp("Tcp:PassiveOpens"),
      tcp("TcpExt:ListenOverflows"), tcp("TcpExt:ListenDrops"),
      tcp("TcpExt:TCPSynRetrans"));
  {
    std::map<int64_t, int> by_second, renewed_by_second;
    for (int64_t t : back) ++by_second[t / 1'000'000];
    for (int64_t t : renewed) ++renewed_by_second[t / 1'000'000];
    int cumulative = 0;
    int64_t last =
        std::max(by_second.empty() ? 0 : by_second.rbegin()->first,
                 renewed_by_second.empty() ? 0 : renewed_by_second.rbegin()->first);
    for (int64_t s = 0; s <= last; ++s) {
      cumulative += by_second[s];
      report_ +=
          absl::StrFormat("| %d–%d | %d | %d | %d | %.0f %% | %.0f %% |\n", s, s + 1,
                          by_second[s], cumulative, renewed_by_second[s],
                          100 * ca_cpu_by_second[s], 100 * agents_cpu_by_second[s]);
    }
  }
  std::printf(
      "storm: %zu of %d back, p99 %.1f s, all %.1f s; renewed %zu, all %.1f s; CPU "
      "tandem-ca %.1f s, agents %.1f s; %" PRId64 " connections accepted, %" PRId64
      " listen overflows\n",
      back.size(), wanted, Percentile(back, 0.99) / 1e6, Percentile(back, 1.0) / 1e6,
      renewed.size(), Percentile(renewed, 1.0) / 1e6, ca_cpu, agents_cpu,
      tcp("Tcp:PassiveOpens"), tcp("TcpExt:ListenOverflows"));

  return Finish(workers);
}

int Driver::Finish(std::vector<Proc>& workers) {
  for (Proc& w : workers) {
    std::fprintf(w.to, "quit\n");
    std::fflush(w.to);
  }
  for (Proc& w : workers) waitpid(w.pid, nullptr, 0);
  kill(ca_, SIGTERM);
  waitpid(ca_, nullptr, 0);
  std::string out = flags_.Get("out");
  if (!out.empty()) std::ofstream(out) << report_;
  std::printf("\n%s", report_.c_str());
  if (failed_) {
    absl::StatusOr<std::string> log = tandem::ReadFileToString(
        dir_ + (server_bin_.empty() ? "/tandem-ca.log" : "/server.log"));
    std::fprintf(stderr, "--- the server's log ---\n%s--- end ---\n",
                 log.ok() ? log->c_str() : "(unreadable)\n");
    std::fprintf(stderr,
                 "tandem-ca-load: FAILED (streams or renewals missing); kept %s\n",
                 dir_.c_str());
    return 1;
  }
  std::filesystem::remove_all(dir_);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<tandem::Flags> flags = tandem::Flags::Parse(
      argc, argv, 1,
      {"ca-bin", "server-bin", "server-mode", "agents", "per-process", "accounts",
       "first-open", "rates", "rate-secs", "revocations", "storm", "storm-deadline",
       "open-rate", "out"});
  if (!flags.ok()) Die(std::string(flags.status().message()));
  // As tandem-agent does (SIGPIPE, and Abseil's deadlock detection off, which took 9%
  // of the workers' CPU inside gRPC's locks): the simulated agents cost what agents do.
  tandem::PrepareProcess();
  return Driver(*flags).Main();
}
