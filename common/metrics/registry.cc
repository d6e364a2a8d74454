#include "common/metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::metrics {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::string line = absl::StrCat("tandem::metrics CHECK failed: ", what, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::abort();
}

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Go's strconv.FormatFloat(v, 'g', -1, 64) equivalent for finite values: the shortest
// text that reads back as the same double.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// Appends `{a="x",b="y"}` (nothing for no labels), with `extra` (le) last.
void AppendLabels(std::string& out, const Labels& labels,
                  absl::string_view extra_name = {}, absl::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, name, "=\"");
    AppendEscaped(out, value, /*escape_quote=*/true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += '}';
}

}  // namespace

void AppendEscaped(std::string& out, std::string_view s, bool escape_quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  AppendEscaped(out, value, /*escape_quote=*/true);
  return out;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& Registry::Default() {
  static Registry* registry = new Registry();
  return *registry;
}

const char* Registry::TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Sorts `labels` and returns their names; CHECK-fails on bad or duplicate names.
std::vector<std::string> CheckLabels(absl::string_view name, bool histogram,
                                     Labels& sorted) {
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> label_names;
  for (const auto& [label, value] : sorted) {
    if (!IsLabelName(label) || label.rfind("__", 0) == 0) {
      Die(absl::StrCat("invalid label name \"", label, "\" on ", name));
    }
    if (histogram && label == "le") {
      Die(absl::StrCat("label \"le\" is reserved on histogram ", name));
    }
    if (!label_names.empty() && label_names.back() == label) {
      Die(absl::StrCat("duplicate label \"", label, "\" on ", name));
    }
    label_names.push_back(label);
  }
  return label_names;
}

Registry::Family& Registry::GetFamily(Type type, std::string_view name,
                                      std::string_view help, bool info) {
  // Debian's Abseil has its own string_view, which StrCat does not take from std.
  const absl::string_view name_av(name.data(), name.size());
  const absl::string_view help_av(help.data(), help.size());
  if (!IsMetricName(name)) Die(absl::StrCat("invalid metric name \"", name_av, "\""));
  if (help.empty()) Die(absl::StrCat("empty help for ", name_av));
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family family;
    family.type = type;
    family.help = std::string(help);
    family.info = info;
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family& family = it->second;
  if (family.type != type) {
    Die(absl::StrCat(name_av, " registered as ", TypeName(family.type), ", requested as ",
                     TypeName(type)));
  }
  if (family.help != help) {
    Die(absl::StrCat(name_av, " registered with help \"", family.help,
                     "\", requested with \"", help_av, "\""));
  }
  if (family.info != info) {
    Die(absl::StrCat(name_av,
                     family.info ? " is an info family" : " is not an info family"));
  }
  return family;
}

Registry::Series& Registry::GetSeries(Type type, std::string_view name,
                                      std::string_view help, std::vector<double> buckets,
                                      const Labels& labels) {
  const absl::string_view name_av(name.data(), name.size());
  Labels sorted = labels;
  std::vector<std::string> label_names =
      CheckLabels(name_av, type == Type::kHistogram, sorted);
  if (type == Type::kHistogram) {
    if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) {
      buckets.pop_back();
    }
    for (size_t i = 0; i < buckets.size(); ++i) {
      if (!std::isfinite(buckets[i]) || (i > 0 && !(buckets[i - 1] < buckets[i]))) {
        Die(absl::StrCat("histogram ", name_av,
                         " buckets must be finite and strictly increasing"));
      }
    }
  }
  const bool is_new = families_.find(name) == families_.end();
  Family& family = GetFamily(type, name, help, /*info=*/false);
  if (is_new) {
    family.buckets = buckets;
    family.label_names = label_names;
  }
  if (family.buckets != buckets)
    Die(absl::StrCat(name_av, " registered with other buckets"));
  if (family.label_names != label_names) {
    Die(absl::StrCat(name_av, " registered with labels {",
                     absl::StrJoin(family.label_names, ","), "}, requested with {",
                     absl::StrJoin(label_names, ","), "}"));
  }
  return family.series[sorted];
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help,
                              const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Series& series = GetSeries(Type::kCounter, name, help, {}, labels);
  if (series.function)
    Die(absl::StrCat(absl::string_view(name.data(), name.size()),
                     " is a function series"));
  if (!series.counter) series.counter = std::make_unique<Counter>();
  return *series.counter;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help,
                          const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Series& series = GetSeries(Type::kGauge, name, help, {}, labels);
  if (series.function)
    Die(absl::StrCat(absl::string_view(name.data(), name.size()),
                     " is a function series"));
  if (!series.gauge) series.gauge = std::make_unique<Gauge>();
  return *series.gauge;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  std::vector<double> buckets, const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Series& series = GetSeries(Type::kHistogram, name, help, buckets, labels);
  if (!series.histogram)
    series.histogram = std::make_unique<Histogram>(families_.find(name)->second.buckets);
  return *series.histogram;
}

void Registry::AddFunction(Type type, std::string_view name, std::string_view help,
                           const Labels& labels, std::function<double()> fn) {
  absl::MutexLock lock(&mu_);
  Series& series = GetSeries(type, name, help, {}, labels);
  if (series.counter || series.gauge || series.function) {
    Die(absl::StrCat(absl::string_view(name.data(), name.size()),
                     " has this series already"));
  }
  series.function = std::make_unique<FunctionValue>();
  series.function->fn = std::move(fn);
  functions_.push_back(series.function.get());
}

void Registry::AddCounterFunction(std::string_view name, std::string_view help,
                                  const Labels& labels, std::function<uint64_t()> fn) {
  AddFunction(Type::kCounter, name, help, labels,
              [fn = std::move(fn)] { return static_cast<double>(fn()); });
}

void Registry::AddGaugeFunction(std::string_view name, std::string_view help,
                                const Labels& labels, std::function<double()> fn) {
  AddFunction(Type::kGauge, name, help, labels, std::move(fn));
}

void Registry::SetInfo(std::string_view name, std::string_view help,
                       const Labels& labels) {
  Labels sorted = labels;
  CheckLabels(absl::string_view(name.data(), name.size()), false, sorted);
  absl::MutexLock lock(&mu_);
  Family& family = GetFamily(Type::kGauge, name, help, /*info=*/true);
  family.series.clear();
  family.series[sorted].gauge = std::make_unique<Gauge>();
  family.series[sorted].gauge->Set(1);
}

void Registry::ClearInfo(std::string_view name, std::string_view help) {
  absl::MutexLock lock(&mu_);
  GetFamily(Type::kGauge, name, help, /*info=*/true).series.clear();
}

void Registry::AddCollector(std::function<void()> collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::RenderPrometheus() const {
  absl::MutexLock scrape_lock(&scrape_mu_);
  std::vector<std::function<void()>> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  // Without mu_: collectors may register or look up metrics.
  for (const auto& collector : collectors) collector();
  std::vector<FunctionValue*> functions;
  {
    absl::MutexLock lock(&mu_);
    functions = functions_;
  }
  // Without mu_ too: callbacks may take their owner's locks. scrape_mu_ keeps `value`
  // to one writer; FunctionValues are never freed while the registry lives.
  for (FunctionValue* f : functions) f->value = f->fn();

  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, family] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ");
    AppendEscaped(out, family.help, /*escape_quote=*/false);
    absl::StrAppend(&out, "\n# TYPE ", name, " ", TypeName(family.type), "\n");
    for (const auto& [labels, series] : family.series) {
      switch (family.type) {
        case Type::kCounter:
          out += name;
          AppendLabels(out, labels);
          if (series.function) {
            // Exact as an integer up to 2^53, far beyond any count here.
            absl::StrAppend(&out, " ", static_cast<uint64_t>(series.function->value),
                            "\n");
          } else {
            absl::StrAppend(&out, " ", series.counter->Value(), "\n");
          }
          break;
        case Type::kGauge:
          out += name;
          AppendLabels(out, labels);
          absl::StrAppend(&out, " ",
                          FormatDouble(series.function ? series.function->value
                                                       : series.gauge->Value()),
                          "\n");
          break;
        case Type::kHistogram: {
          Histogram::Snapshot snapshot = series.histogram->Fold();
          uint64_t cumulative = 0;
          for (size_t b = 0; b < snapshot.bucket_counts.size(); ++b) {
            cumulative += snapshot.bucket_counts[b];
            std::string le =
                b < family.buckets.size() ? FormatDouble(family.buckets[b]) : "+Inf";
            absl::StrAppend(&out, name, "_bucket");
            AppendLabels(out, labels, "le", le);
            absl::StrAppend(&out, " ", cumulative, "\n");
          }
          absl::StrAppend(&out, name, "_sum");
          AppendLabels(out, labels);
          absl::StrAppend(&out, " ", FormatDouble(snapshot.sum), "\n");
          absl::StrAppend(&out, name, "_count");
          AppendLabels(out, labels);
          absl::StrAppend(&out, " ", snapshot.count, "\n");
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace tandem::metrics
