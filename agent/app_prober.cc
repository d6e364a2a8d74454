#include "agent/app_prober.h"

#include <array>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/app_grpc_probe.h"
#include "agent/app_socket_probe.h"
#include "common/http/http_server.h"
#include "common/log/log.h"
#include "common/metrics/counter.h"
#include "common/metrics/registry.h"

namespace tandem::agent {
namespace {

constexpr size_t kOutcomes = static_cast<size_t>(AppProbeOutcome::kStopping) + 1;

AppProbeResult RunProbe(const AppProbeSpec& spec, absl::Time deadline) {
  return spec.kind == AppProbeSpec::Kind::kGrpc ? RunGrpcProbe(spec, deadline)
                                                : RunSocketProbe(spec, deadline);
}

}  // namespace

struct AppProber::Slot {
  Slot(std::string path, AppProbeSpec spec)
      : path(std::move(path)), spec(std::move(spec)) {}

  const std::string path;
  const AppProbeSpec spec;
  std::array<metrics::Counter*, kOutcomes> counters{};  // by AppProbeOutcome
  std::optional<bool> last_ok;                          // worker thread only
  std::thread thread;

  absl::Mutex mu;
  std::vector<Callback> waiters ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
};

AppProber::AppProber(AppProbeTable probes, metrics::Registry* registry) {
  metrics::Registry& r = registry != nullptr ? *registry : metrics::Registry::Default();
  for (auto& [path, spec] : probes) {
    max_timeout_ = std::max(max_timeout_, spec.timeout);
    auto slot = std::make_unique<Slot>(path, std::move(spec));
    for (size_t i = 0; i < kOutcomes; ++i) {
      slot->counters[i] = &r.GetCounter(
          "tandem_agent_app_probe_total",
          "App probes run for the kubelet on the app-health port, by container, probe "
          "and result.",
          {{"container", slot->spec.container},
           {"probe", slot->spec.probe},
           {"result",
            std::string(AppProbeOutcomeName(static_cast<AppProbeOutcome>(i)))}});
    }
    slots_.emplace(path, std::move(slot));
  }
}

AppProber::~AppProber() { Stop(); }

void AppProber::Start() {
  if (started_) return;
  started_ = true;
  for (auto& [path, slot] : slots_) {
    slot->thread = std::thread([this, s = slot.get()] { Run(*s); });
  }
}

void AppProber::Stop() {
  for (auto& [path, slot] : slots_) {
    absl::MutexLock lock(&slot->mu);
    slot->stopping = true;
  }
  for (auto& [path, slot] : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
    std::vector<Callback> left;
    {
      absl::MutexLock lock(&slot->mu);
      left.swap(slot->waiters);
    }
    for (Callback& done : left)
      done({AppProbeOutcome::kStopping, "the agent is stopping"});
  }
}

bool AppProber::Check(std::string_view path, Callback done) {
  auto it = slots_.find(path);
  if (it == slots_.end()) return false;
  Slot& slot = *it->second;
  {
    absl::MutexLock lock(&slot.mu);
    if (!slot.stopping) {
      slot.waiters.push_back(std::move(done));
      return true;
    }
  }
  done({AppProbeOutcome::kStopping, "the agent is stopping"});
  return true;
}

void AppProber::Run(Slot& slot) {
  auto has_work = [&slot]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slot.mu) {
    return slot.stopping || !slot.waiters.empty();
  };
  while (true) {
    {
      absl::MutexLock lock(&slot.mu);
      slot.mu.Await(absl::Condition(&has_work));
      if (slot.stopping) return;  // Stop() answers whoever still waits
    }
    AppProbeResult result = RunProbe(slot.spec, absl::Now() + slot.spec.timeout);
    std::vector<Callback> done;
    {
      // Everyone who asked while the probe ran shares its result.
      absl::MutexLock lock(&slot.mu);
      done.swap(slot.waiters);
    }
    slot.counters[static_cast<size_t>(result.outcome)]->Inc();
    if (slot.last_ok != result.ok()) {
      log::Log(result.ok() ? log::Level::kInfo : log::Level::kWarn, "agent",
               result.ok() ? "app probe succeeds" : "app probe fails",
               {{"path", slot.path},
                {"result", AppProbeOutcomeName(result.outcome)},
                {"detail", result.detail}});
      slot.last_ok = result.ok();
    }
    for (Callback& callback : done) callback(result);
  }
}

void AppProber::Serve(http::HttpServer& server) {
  for (auto& [path, slot] : slots_) {
    server.HandleDeferred(path, [this, path = path](const http::HttpRequest&,
                                                    http::HttpServer::Responder respond) {
      Check(path, [respond](const AppProbeResult& result) {
        respond(result.ok()
                    ? http::HttpResponse{200, "text/plain", "ok\n"}
                    : http::HttpResponse{
                          503, "text/plain",
                          absl::StrCat(std::string(AppProbeOutcomeName(result.outcome)),
                                       ": ", result.detail, "\n")});
      });
    });
  }
}

}  // namespace tandem::agent
