#ifndef TANDEM_AGENT_APP_PROBER_H_
#define TANDEM_AGENT_APP_PROBER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "agent/app_probe_result.h"
#include "agent/app_probe_spec.h"

namespace tandem::http {
class HttpServer;
}  // namespace tandem::http
namespace tandem::metrics {
class Registry;
}  // namespace tandem::metrics

namespace tandem::agent {

// Answers the kubelet's probes that the injector moved from the app's ports to the
// agent's app-health port (in STRICT mode the proxy refuses the kubelet's plaintext on
// app ports): each /app-health/<container>/<probe> path runs the app's original probe
// over loopback (RunSocketProbe, RunGrpcProbe) and answers 200 or 503.
//
// Counts every probe in tandem_agent_app_probe_total{container,probe,result} (result:
// AppProbeOutcomeName); the labels come from the table, fixed at start, so the series
// are bounded. Logs when a path's result turns from success to failure or back.
//
// Threading: one worker thread per path (started by Start) runs that path's probe,
// blocking up to the probe's timeout. A request for a path whose probe is running
// joins it and gets its result, so a slow app delays only the answers for its own
// path: neither other paths nor the HTTP server's loop (the handlers are deferred)
// wait for it, and a burst of requests runs one probe, not one each. Check() and the
// served handlers from any thread; callbacks run on the path's worker thread (or the
// calling thread once stopped). Start/Stop/destructor from the owning thread.
class AppProber {
 public:
  using Callback = std::function<void(const AppProbeResult&)>;

  // `registry` null means metrics::Registry::Default(); it must outlive the prober.
  explicit AppProber(AppProbeTable probes, metrics::Registry* registry = nullptr);
  ~AppProber();  // Stop()s
  AppProber(const AppProber&) = delete;
  AppProber& operator=(const AppProber&) = delete;

  // Owning thread. Starts the worker threads.
  void Start();
  // Owning thread. Idempotent; waits for running probes (each bounded by its timeout)
  // and answers requests still waiting with kStopping.
  void Stop();

  // Any thread. Runs the probe at `path` (or joins the one running) and calls `done`
  // with its result; false, without calling `done`, when no probe has that path.
  bool Check(std::string_view path, Callback done);

  // Registers every path on `server` as a deferred handler: 200 "ok" on success, 503
  // "<result>: <detail>" otherwise; other paths keep the server's 404. The server must
  // be stopped before this prober is destroyed. Any thread.
  void Serve(http::HttpServer& server);

  // The longest probe timeout: the server's deferred_timeout must be longer.
  absl::Duration max_timeout() const { return max_timeout_; }
  size_t size() const { return slots_.size(); }

 private:
  struct Slot;
  void Run(Slot& slot);

  std::map<std::string, std::unique_ptr<Slot>, std::less<>> slots_;  // fixed at birth
  absl::Duration max_timeout_ = absl::ZeroDuration();
  bool started_ = false;  // owning thread only
};

}  // namespace tandem::agent

#endif  // TANDEM_AGENT_APP_PROBER_H_
