#ifndef TANDEM_PROXY_METRICS_MERGER_H_
#define TANDEM_PROXY_METRICS_MERGER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http/http_server.h"
#include "common/metrics/registry.h"

namespace tandem::proxy {

// Another /metrics page of the pod, served on loopback: the agent's, or the app's own
// (Istio's merged-metrics model: one scrape per pod).
struct MetricsSource {
  std::string name;  // the `source` label: "agent" or "app"
  uint16_t port = 0;
  std::string path = "/metrics";
};

// Returns the body of a complete HTTP/1.x answer (read to the end of the connection):
// the status must be 200 and the body not chunked. kInvalidArgument naming the
// problem otherwise. The bytes come from another process: never trusted.
absl::StatusOr<std::string> HttpResponseBody(absl::string_view response);

// Merges Prometheus text pages into one: each family (a name's HELP/TYPE lines and the
// samples after them) appears once, with the samples of every page that has it, in
// the order first seen; a later page's HELP/TYPE of a known family is dropped, and an
// OpenMetrics "# EOF" ends a page. Lines are otherwise passed through unchanged.
std::string MergeExpositions(const std::vector<std::string>& pages);

// Fetches and merges the other pages into the proxy's /metrics, off the metrics
// server's thread and bounded in time, so a slow or broken source never stalls or
// fails the proxy's own metrics: a source that fails is left out and counted in
// tandem_proxy_metrics_merge_failures_total{source,reason} (reason: connect, timeout,
// too_large, status, malformed, busy).
//
// Threading: Serve() from any thread (the metrics server's); one thread of its own
// fetches. The destructor answers what is queued with the proxy's metrics alone and
// joins.
class MetricsMerger {
 public:
  struct Options {
    std::vector<MetricsSource> sources;
    // Per source: connect, send, read to the end.
    absl::Duration timeout = absl::Seconds(1);
    size_t max_bytes = 4 << 20;
    // Scrapes waiting beyond this are answered at once with the proxy's own metrics
    // (reason "busy" for every source).
    size_t max_queued = 4;
    metrics::Registry* registry = nullptr;  // required; outlives the merger
  };

  explicit MetricsMerger(Options options);
  ~MetricsMerger();
  MetricsMerger(const MetricsMerger&) = delete;
  MetricsMerger& operator=(const MetricsMerger&) = delete;

  // Answers `respond`, later and from the merger's thread, with `own` merged with every
  // source's page. Any thread.
  void Serve(std::string own, http::HttpServer::Responder respond);

 private:
  enum Reason { kConnect, kTimeout, kTooLarge, kStatus, kMalformed, kBusy, kReasonCount };
  struct Job {
    std::string own;
    http::HttpServer::Responder respond;
  };

  void Run();
  // Returns the page of `source`, or counts why not and returns an error.
  absl::StatusOr<std::string> Fetch(size_t source);
  static http::HttpResponse Answer(std::string body);

  const Options options_;
  // [source][reason], registered at construction.
  std::vector<std::vector<metrics::Counter*>> failures_;
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_METRICS_MERGER_H_
