// The soak run: the loopback mesh of tests/integration/mesh_fixture (real tandem-ca,
// tandem-agents and tandem-proxies) with 2-second certificates under keep-alive and
// short-connection load for a given time, while a seeded random schedule SIGKILLs the
// agents and the CA and severs the proxies' SDS streams, each for a random time: some
// faults outlast a certificate and leave a gap, most do not. Every failed connection is
// classified against the certificate gaps by the rule in certificate_gaps.h, and the
// run fails if any falls outside an excused gap.
//
//   mesh_soak [--seconds=300] [--seed=N] [--allowance_ms=1000] [--long_faults]
//             [--keep_logs] [gtest flags]
//
// `./dev soak [seconds]` builds and runs it; ctest runs 15 s of it (label soak). Ctrl-C
// ends the run early with its summary; a second Ctrl-C kills it (its processes die with
// it). Main test thread: the schedule; its own threads: the load and the poll of the
// proxies' certificates.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/unix_socket_relay.h"
#include "tests/soak/certificate_gaps.h"

namespace tandem::testing {
namespace {

int64_t g_seconds = 300;
uint64_t g_seed = 0;  // 0: from the clock (printed, so a run can be repeated)
absl::Duration g_allowance = absl::Seconds(1);
// Every fault lasts 2.5-4 s, longer than a certificate lives (2 s) by at least 0.5 s:
// every certificate held when a fault begins runs out during it, so every gap begins
// well inside its fault and the verdict never leans on the allowance, however slow the
// machine (ctest runs this way).
bool g_long_faults = false;
// Keep every process log even when the run passes (a failed run always keeps them).
bool g_keep_logs = false;
std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted.store(true); }

// Seconds as a duration in whole milliseconds (for readable logs).
absl::Duration Millis(double seconds) {
  return absl::Milliseconds(static_cast<int64_t>(seconds * 1000));
}

// Reads one number field of the proxy's admin /certs JSON; false when missing.
bool JsonNumber(const std::string& json, const std::string& key, int64_t* out) {
  size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return false;
  at += key.size() + 4;
  size_t end = json.find_first_of(",}", at);
  return end != std::string::npos && absl::SimpleAtoi(json.substr(at, end - at), out);
}

std::string JsonString(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": \"");
  if (at == std::string::npos) return "";
  at += key.size() + 5;
  size_t end = json.find('"', at);
  return end == std::string::npos ? "" : json.substr(at, end - at);
}

// What the poll saw one proxy serve, in order. Written by the poll thread, read by
// the main thread once the poll has stopped.
struct ServedLog {
  std::vector<ServedCertificate> certs;
  int64_t polls = 0, failed_polls = 0;
};

// One fault the schedule performed, for the summary and the obstacles.
struct Fault {
  std::string what;  // "agent", "sds", "ca"
  std::string pod;   // "client", "server", or "" for the CA
  TimeInterval when;
};

class MeshSoak : public MeshTest {
 protected:
  MeshSoak() { cert_validity_ = absl::Seconds(2); }

  void Log(const std::string& line) {
    std::cerr << absl::StrFormat("[%7.1f s] %s\n",
                                 absl::ToDoubleSeconds(absl::Now() - run_start_), line);
  }

  // Polls both proxies' /certs every 20 ms until `stop`, recording each new serial.
  void PollCertificates(const std::atomic<bool>& stop) {
    while (!stop.load()) {
      for (auto [pod, log] :
           {std::pair{&client_, &served_[0]}, {&server_, &served_[1]}}) {
        std::string body = HttpGet(pod->admin, "/certs");
        // The certificate in the answer was served by the time the answer arrived (and
        // after the previous poll): a gap ends here, never earlier than the fact.
        absl::Time answered = absl::Now();
        int64_t not_after = 0;
        std::string serial = JsonString(body, "serial");
        absl::MutexLock lock(&served_mu_);
        ++log->polls;
        if (serial.empty() || !JsonNumber(body, "not_after", &not_after)) {
          ++log->failed_polls;
          continue;
        }
        if (log->certs.empty() || log->certs.back().serial != serial) {
          log->certs.push_back({answered, serial, absl::FromUnixSeconds(not_after)});
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  // Starts the pod's agent again and returns once it holds a certificate: a restarted
  // agent has a new key and nothing to serve before the CA answers it, so its fault
  // ends there (its /healthz/ready), not when the process is up.
  void RestartAgent(Pod& pod) {
    ASSERT_TRUE(pod.agent->Start());
    pod.agent_metrics = WaitForListeningPort(*pod.agent, "metrics");
    ASSERT_GT(pod.agent_metrics, 0) << "the restarted tandem-agent did not come up";
    ASSERT_TRUE(
        WaitFor([&] { return !HttpGet(pod.agent_metrics, "/healthz/ready").empty(); },
                absl::Seconds(20)))
        << "the restarted tandem-agent got no certificate";
  }

  // Runs the schedule's fault number `n` and returns what it did.
  Fault RunFault(std::mt19937_64& rng, size_t n) {
    std::uniform_int_distribution<int> kind(0, 4);
    std::uniform_real_distribution<double> agent_down(g_long_faults ? 2.5 : 0.1, 4.0),
        ca_down(g_long_faults ? 2.5 : 0.5, g_long_faults ? 4.0 : 5.0);
    // 0, 1: the client's or the server's agent; 2, 3: their SDS streams; 4: the CA.
    // Long faults take turns, so 15 s see each kind of fault.
    constexpr int kTurns[] = {0, 3, 4, 1, 2};
    int k = g_long_faults ? kTurns[n % 5] : kind(rng);
    Pod& pod = k % 2 == 0 ? client_ : server_;
    UnixSocketRelay& relay = *(k % 2 == 0 ? client_relay_ : server_relay_);
    Fault f;
    if (k <= 1) {
      absl::Duration down = Millis(agent_down(rng));
      f = {"agent", pod.name, {absl::Now(), absl::Now()}};
      Log(absl::StrCat("SIGKILL the ", pod.name, "'s agent for ", FormatDuration(down)));
      pod.agent->Kill();
      absl::SleepFor(down);
      RestartAgent(pod);
    } else if (k <= 3) {
      absl::Duration down = Millis(agent_down(rng));
      f = {"sds", pod.name, {absl::Now(), absl::Now()}};
      Log(absl::StrCat("sever the ", pod.name, "'s SDS stream for ",
                       FormatDuration(down)));
      relay.set_blocked(true);
      relay.Sever();
      absl::SleepFor(down);
      relay.set_blocked(false);
    } else {
      absl::Duration down = Millis(ca_down(rng));
      f = {"ca", "", {absl::Now(), absl::Now()}};
      Log(absl::StrCat("SIGKILL the CA for ", FormatDuration(down)));
      ca_->Kill();
      absl::SleepFor(down);
      StartCa();
    }
    f.when.end = absl::Now();
    return f;
  }

  // A failed run keeps every process log whole (the fixture prints only the start and
  // the end of each, and a soak's failure sits in the middle): they are copied out of
  // the temp dir, which the fixture removes.
  void TearDown() override {
    if (HasFailure() || g_keep_logs) {
      std::string keep = absl::StrCat("/tmp/tandem-soak-logs-", getpid());
      std::error_code error;  // best effort: a log that cannot be copied is skipped
      for (std::filesystem::recursive_directory_iterator it(dir_, error), end;
           !error && it != end; it.increment(error)) {
        bool log = it->is_regular_file(error) && it->path().extension() == ".log";
        error.clear();
        if (!log) continue;
        std::filesystem::path to =
            keep / std::filesystem::relative(it->path(), dir_, error);
        std::filesystem::create_directories(to.parent_path(), error);
        std::filesystem::copy_file(
            it->path(), to, std::filesystem::copy_options::overwrite_existing, error);
        error.clear();
      }
      std::cerr << "the whole logs of this run: " << keep << "\n";
    }
    MeshTest::TearDown();
  }

  absl::Time run_start_;
  std::unique_ptr<UnixSocketRelay> client_relay_, server_relay_;
  absl::Mutex served_mu_;
  ServedLog served_[2];  // client, server
};

double Accepted(const std::string& metrics) {
  return MetricValue(metrics, "tandem_proxy_secret_updates_total{result=\"accepted\"}");
}

TEST_F(MeshSoak, NoConnectionFailsOutsideACertificateGapAFaultExplains) {
  uint64_t seed = g_seed != 0 ? g_seed : absl::ToUnixNanos(absl::Now());
  std::mt19937_64 rng(seed);
  // The proxies reach their agents through relays the schedule can sever.
  client_.name = "client";
  server_.name = "server";
  for (auto [pod, relay] :
       {std::pair{&client_, &client_relay_}, {&server_, &server_relay_}}) {
    pod->proxy_sds_socket = absl::StrCat(dir_, "/", pod->name, "-sds-relay.sock");
    *relay = UnixSocketRelay::Create(pod->proxy_sds_socket,
                                     absl::StrCat(dir_, "/", pod->name, "/sds/sds.sock"));
    ASSERT_NE(*relay, nullptr) << pod->proxy_sds_socket;
  }
  StartMesh();
  const double client_accepted = Accepted(HttpGet(client_.metrics, "/metrics"));
  const double server_accepted = Accepted(HttpGet(server_.metrics, "/metrics"));

  run_start_ = absl::Now();
  const absl::Time end = run_start_ + absl::Seconds(g_seconds);
  std::cerr << "soak: starts " << absl::FormatTime(run_start_) << ", " << g_seconds
            << " s, seed " << seed << ", " << absl::ToInt64Seconds(cert_validity_)
            << " s certificates, allowance " << FormatDuration(g_allowance)
            << (g_long_faults ? ", long faults" : "") << ", logs in " << dir_ << "\n";
  std::atomic<bool> stop_poll{false};
  std::thread poll([&] { PollCertificates(stop_poll); });
  EchoTrafficOptions load;
  load.duration = absl::Seconds(g_seconds);
  load.short_workers = 3;
  load.short_pause = absl::Milliseconds(5);
  load.pause_after_failure = absl::Milliseconds(20);
  load.payload_bytes = 4096;
  load.long_connections = 4;
  load.long_payload_bytes = 16384;
  load.long_interval = absl::Milliseconds(20);
  load.reconnect_long = true;
  load.record_failures = true;
  load.stop = &g_interrupted;
  TrafficReport report;
  std::thread traffic([&] { report = RunEchoTraffic(client_.outbound, load); });

  // The schedule: a fault, then 1-4 s of calm, until the end (a fault in progress
  // finishes first, so the mesh ends whole).
  std::vector<Fault> faults;
  std::uniform_real_distribution<double> calm(1.0, 4.0);
  while (absl::Now() < end && !g_interrupted.load() && !HasFatalFailure()) {
    absl::Time wake = std::min(end, absl::Now() + absl::Seconds(calm(rng)));
    while (absl::Now() < wake && !g_interrupted.load()) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (absl::Now() >= end || g_interrupted.load()) break;
    faults.push_back(RunFault(rng, faults.size()));
  }
  traffic.join();
  const absl::Time run_end = absl::Now();
  stop_poll.store(true);
  poll.join();

  // Obstacles per workload: the CA's outages for both, the rest for their own pod.
  std::vector<TimeInterval> obstacles[2];
  std::vector<const Fault*> obstacle_faults[2];
  std::map<std::string, int> kills;
  for (const Fault& f : faults) {
    ++kills[f.what + (f.pod.empty() ? "" : " " + f.pod)];
    for (int w = 0; w < 2; ++w) {
      if (f.pod.empty() || f.pod == (w == 0 ? "client" : "server")) {
        obstacles[w].push_back(f.when);
        obstacle_faults[w].push_back(&f);
      }
    }
  }
  std::vector<CertificateGap> gaps[2];
  for (int w = 0; w < 2; ++w) {
    gaps[w] = FindGaps(served_[w].certs, run_end);
    ExcuseGaps(obstacles[w], g_allowance, &gaps[w]);
  }
  int64_t inside = 0;
  std::vector<const TrafficFailure*> outside;
  for (const TrafficFailure& f : report.failures) {
    bool excused = f.kind != TrafficFailure::Kind::kLongRound &&
                   (InsideExcusedGap(gaps[0], f.start, f.end) ||
                    InsideExcusedGap(gaps[1], f.start, f.end));
    if (excused) {
      ++inside;
    } else {
      outside.push_back(&f);
    }
  }

  const int64_t unclassified = report.short_failed + report.long_failed -
                               static_cast<int64_t>(report.failures.size());

  // The summary.
  auto rel = [&](absl::Time t) { return absl::ToDoubleSeconds(t - run_start_); };
  auto ms = [](absl::Duration d) {
    return FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
  };
  auto gap_summary = [&](int w) {
    int excused = 0;
    absl::Duration longest, latest_expiry = -absl::InfiniteDuration(), recovery;
    for (const CertificateGap& g : gaps[w]) {
      longest = std::max(longest, g.when.end - g.when.start);
      if (!g.excused) continue;
      ++excused;
      latest_expiry = std::max(latest_expiry, g.expired_after_fault);
      recovery = std::max(recovery, g.recovered_after_fault);
    }
    std::string text =
        absl::StrCat(gaps[w].size(), " (", excused, " excused), longest ", ms(longest));
    if (excused > 0) {
      absl::StrAppend(&text, "; latest expiry after its fault ended ", ms(latest_expiry),
                      ", longest recovery after the last fault in a gap ended ",
                      ms(recovery));
    }
    return text;
  };
  // How close the allowance came to being spent, by the kind of fault that excused.
  std::map<std::string, absl::Duration> latest_by_fault;
  for (int w = 0; w < 2; ++w) {
    for (const CertificateGap& g : gaps[w]) {
      if (!g.excused) continue;
      auto [it, fresh] = latest_by_fault.try_emplace(
          obstacle_faults[w][g.excused_by]->what, g.expired_after_fault);
      if (!fresh) it->second = std::max(it->second, g.expired_after_fault);
    }
  }
  std::string latest_text;
  for (const auto& [what, d] : latest_by_fault) {
    absl::StrAppend(&latest_text, latest_text.empty() ? "" : ", ", what, " ", ms(d));
  }
  // Gaps nothing excused (a failure in one is outside), whether or not a connection
  // met one: a certificate that ran out with no fault in force.
  for (int w = 0; w < 2; ++w) {
    int shown = 0;
    for (const CertificateGap& g : gaps[w]) {
      if (g.excused || ++shown > 10) continue;
      std::cerr << absl::StrFormat("gap nothing excuses %s: %.3f-%.3f s\n",
                                   w == 0 ? "client" : "server", rel(g.when.start),
                                   rel(g.when.end));
    }
  }
  // The slowest recovery of each workload, with the fault it followed: where to look
  // in the logs when a recovery took long.
  for (int w = 0; w < 2; ++w) {
    const CertificateGap* slowest = nullptr;
    for (const CertificateGap& g : gaps[w]) {
      if (g.excused && (slowest == nullptr ||
                        g.recovered_after_fault > slowest->recovered_after_fault)) {
        slowest = &g;
      }
    }
    if (slowest == nullptr) continue;
    const Fault& f = *obstacle_faults[w][slowest->recovered_after];
    std::cerr << absl::StrFormat(
        "slowest recovery %s: gap %.3f-%.3f s, the last fault in it %s %s %.3f-%.3f s\n",
        w == 0 ? "client" : "server", rel(slowest->when.start), rel(slowest->when.end),
        f.what, f.pod, rel(f.when.start), rel(f.when.end));
  }
  std::string client_metrics = HttpGet(client_.metrics, "/metrics");
  std::string server_metrics = HttpGet(server_.metrics, "/metrics");
  int64_t connections = report.short_ok + report.short_failed + report.long_connections;
  std::string kill_text;
  for (const auto& [what, n] : kills) {
    absl::StrAppend(&kill_text, kill_text.empty() ? "" : ", ", what, " ", n);
  }
  if (kill_text.empty()) kill_text = "none";
  std::string table = absl::StrCat(
      "\n| soak summary | |\n|---|---|\n",
      absl::StrFormat("| duration | %.1f s%s |\n", rel(run_end),
                      g_interrupted.load() ? " (interrupted)" : ""),
      "| seed | ", seed, " |\n", "| certificate lifetime | ",
      FormatDuration(cert_validity_), " |\n", "| connections | ", connections, " (",
      report.short_ok + report.short_failed, " short, ", report.long_connections,
      " keep-alive) |\n", "| keep-alive rounds ok | ", report.long_rounds_ok, " |\n",
      "| failed inside gaps | ", inside, " |\n", "| failed outside gaps | ",
      outside.size(),
      unclassified > 0
          ? absl::StrCat(" (and ", unclassified, " over the record cap, unclassified)")
          : "",
      " |\n", "| rotations client / server | ",
      Accepted(client_metrics) - client_accepted, " / ",
      Accepted(server_metrics) - server_accepted, " |\n",
      "| certificates seen client / server | ", served_[0].certs.size(), " / ",
      served_[1].certs.size(), " |\n", "| polls of /certs client / server | ",
      served_[0].polls, " (", served_[0].failed_polls, " failed) / ", served_[1].polls,
      " (", served_[1].failed_polls, " failed) |\n", "| gaps client | ", gap_summary(0),
      " |\n", "| gaps server | ", gap_summary(1), " |\n",
      "| latest expiry after the fault that excused it ended, by fault | ",
      latest_text.empty() ? "no gap" : latest_text, " (allowance ", ms(g_allowance),
      ") |\n", "| bytes verified | ", report.bytes_verified,
      " (each sent through both proxies and back, compared) |\n", "| faults | ",
      kill_text, " |\n");
  std::cout << table << std::flush;
  for (size_t i = 0; i < outside.size() && i < 20; ++i) {
    const TrafficFailure& f = *outside[i];
    std::cerr << absl::StrFormat("outside a gap: %.3f-%.3f s: %s\n", rel(f.start),
                                 rel(f.end),
                                 f.error.empty() ? "(text not kept)" : f.error);
  }
  if (!outside.empty()) {
    // The facts the verdict was made from, around the first failure outside.
    absl::Time t = outside.front()->start;
    for (const Fault& f : faults) {
      if (f.when.end > t - absl::Seconds(10) && f.when.start < t + absl::Seconds(2)) {
        std::cerr << absl::StrFormat("fault %s %s: %.3f-%.3f s\n", f.what, f.pod,
                                     rel(f.when.start), rel(f.when.end));
      }
    }
    for (int w = 0; w < 2; ++w) {
      for (const ServedCertificate& c : served_[w].certs) {
        if (c.first_seen > t - absl::Seconds(6) && c.first_seen < t + absl::Seconds(4)) {
          std::cerr << absl::StrFormat("%s certificate seen at %.3f s, notAfter %.3f s\n",
                                       w == 0 ? "client" : "server", rel(c.first_seen),
                                       rel(c.not_after));
        }
      }
    }
  }
  EXPECT_TRUE(outside.empty())
      << outside.size() << " connections failed outside every excused certificate gap";
  EXPECT_EQ(unclassified, 0) << "failures past the record cap cannot be classified";
  if (g_long_faults && !faults.empty()) {
    EXPECT_FALSE(latest_by_fault.empty())
        << "a fault outlasting a certificate left no gap";
  }
  EXPECT_GT(report.bytes_verified, 0);
  EXPECT_GT(served_[0].certs.size(), 1u) << "the client's certificate never rotated";
  EXPECT_GT(served_[1].certs.size(), 1u) << "the server's certificate never rotated";
}

}  // namespace
}  // namespace tandem::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    int64_t ms = 0;
    bool ok = false;
    if (arg.rfind("--seconds=", 0) == 0) {
      ok = absl::SimpleAtoi(arg.substr(10), &tandem::testing::g_seconds) &&
           tandem::testing::g_seconds > 0;
    } else if (arg.rfind("--seed=", 0) == 0) {
      ok = absl::SimpleAtoi(arg.substr(7), &tandem::testing::g_seed);
    } else if (arg == "--long_faults") {
      ok = tandem::testing::g_long_faults = true;
    } else if (arg == "--keep_logs") {
      ok = tandem::testing::g_keep_logs = true;
    } else if (arg.rfind("--allowance_ms=", 0) == 0) {
      ok = absl::SimpleAtoi(arg.substr(15), &ms) && ms >= 0;
      tandem::testing::g_allowance = absl::Milliseconds(ms);
    }
    if (!ok) {
      std::cerr << "usage: mesh_soak [--seconds=300] [--seed=N] [--allowance_ms=1000] "
                   "[--long_faults] [--keep_logs]\n"
                << "bad argument: " << arg << "\n";
      return 2;
    }
  }
  // The first Ctrl-C ends the run with its summary; the second kills it.
  struct sigaction sa = {};
  sa.sa_handler = tandem::testing::OnInterrupt;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return RUN_ALL_TESTS();
}
