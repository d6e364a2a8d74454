#ifndef TANDEM_COMMON_METRICS_REGISTRY_H_
#define TANDEM_COMMON_METRICS_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/counter.h"
#include "common/metrics/gauge.h"
#include "common/metrics/histogram.h"

namespace tandem::metrics {

// Label name/value pairs. Order does not matter: {a,b} and {b,a} name the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Returns latency bucket bounds in seconds, 0.5 ms .. 10 s.
std::vector<double> DefaultLatencyBuckets();

// Owns metric families and renders them in the Prometheus text format 0.0.4.
//
// Threading: every method may be called from any thread. Get*() and AddCollector()
// take a mutex: call them at startup and cache the returned reference; the objects are
// never freed or moved while the registry lives (Default() lives forever), so the hot
// path then touches only the lock-free Counter/Histogram. RenderPrometheus() runs the
// collectors one scrape at a time, then folds every series under the mutex.
//
// Programming errors CHECK-fail (abort with a message on stderr): an invalid metric or
// label name (Prometheus rules; label names starting "__" and "le" on histograms are
// reserved), duplicate label names, empty help, a name registered again with another
// type, help, bucket layout or set of label names, or bad bucket bounds.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the process-wide registry (never destroyed). Any thread.
  static Registry& Default();

  // Same name + same labels returns the same object. Any thread.
  Counter& GetCounter(std::string_view name, std::string_view help,
                      const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help,
                  const Labels& labels = {});
  // `buckets`: finite, strictly increasing upper bounds; a trailing +Inf is dropped
  // (it is always implied). Every series of a family must use the same buckets.
  Histogram& GetHistogram(std::string_view name, std::string_view help,
                          std::vector<double> buckets, const Labels& labels = {});

  // Adds a series whose value `fn` returns at each scrape, for counts another object
  // already keeps (Prometheus's CounterFunc/GaugeFunc). `fn` runs without the registry
  // lock, one scrape at a time, and must stay callable while the registry lives.
  // CHECK-fails if the series exists already. Any thread.
  void AddCounterFunction(std::string_view name, std::string_view help,
                          const Labels& labels, std::function<uint64_t()> fn);
  void AddGaugeFunction(std::string_view name, std::string_view help,
                        const Labels& labels, std::function<double()> fn);

  // Sets an "info" gauge family (value 1) to exactly one series with `labels`,
  // replacing the one before: the certificate or policy in force. ClearInfo() leaves
  // the family with no series (HELP/TYPE only). Get*() on an info family CHECK-fails.
  // Any thread; call from a collector to follow other state.
  void SetInfo(std::string_view name, std::string_view help, const Labels& labels);
  void ClearInfo(std::string_view name, std::string_view help);

  // Adds a callback run at the start of every RenderPrometheus(), e.g. to set gauges from
  // other state. It may call Get*() and must not call RenderPrometheus(). Any thread.
  void AddCollector(std::function<void()> collector);

  // Returns every family, sorted by name, series sorted by labels. Any thread.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  // A value read from a callback; `value` holds the last scrape's reading.
  struct FunctionValue {
    std::function<double()> fn;
    double value = 0;
  };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::unique_ptr<FunctionValue> function;  // counter or gauge read from a callback
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> buckets;           // histograms only
    std::vector<std::string> label_names;  // sorted
    bool info = false;                     // set only through SetInfo/ClearInfo
    std::map<Labels, Series> series;       // keys sorted by label name
  };

  // Finds or creates the family; CHECK-fails on a type, help or info mismatch.
  Family& GetFamily(Type type, std::string_view name, std::string_view help, bool info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finds or creates the series; CHECK-fails on any mismatch.
  Series& GetSeries(Type type, std::string_view name, std::string_view help,
                    std::vector<double> buckets, const Labels& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddFunction(Type type, std::string_view name, std::string_view help,
                   const Labels& labels, std::function<double()> fn);
  static const char* TypeName(Type type);

  mutable absl::Mutex scrape_mu_;  // serialises collectors; taken before mu_
  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> collectors_ ABSL_GUARDED_BY(mu_);
  // Every FunctionValue, to read before rendering (they live in families_).
  std::vector<FunctionValue*> functions_ ABSL_GUARDED_BY(mu_);
};

// Prometheus text-format escaping: `\` and newline always, `"` when escape_quote
// (label values; HELP text leaves quotes alone). For renderers outside a Registry.
void AppendEscaped(std::string& out, std::string_view s, bool escape_quote);
// A label value escaped for the text format (\\, \", \n).
std::string EscapeLabelValue(std::string_view value);

}  // namespace tandem::metrics

#endif  // TANDEM_COMMON_METRICS_REGISTRY_H_
