#ifndef TANDEM_COMMON_METRICS_GAUGE_H_
#define TANDEM_COMMON_METRICS_GAUGE_H_

#include <atomic>

namespace tandem::metrics {

// A value that goes up and down (Prometheus "gauge"): active connections, readiness,
// an expiry timestamp.
//
// Threading: any thread may call any method; lock-free (one atomic double). Gauges are
// not sharded: they are set on state changes or by a collector at scrape time, not per
// byte. Obtain gauges from Registry::GetGauge(); the registry owns them.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  // Replaces the value. Any thread.
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  // Adds `d` (may be negative). Any thread.
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  // Returns the current value. Any thread.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace tandem::metrics

#endif  // TANDEM_COMMON_METRICS_GAUGE_H_
