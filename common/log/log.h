#ifndef TANDEM_COMMON_LOG_LOG_H_
#define TANDEM_COMMON_LOG_LOG_H_

// Logging entry points over the process-wide Logger:
//   log::Info("proxy", "connection closed", {{"conn_id", 42}, {"peer", id}});
//   log::Default().SetLevel(log::Level::kDebug);   // at run time, any thread
//   TANDEM_LOG_EVERY_N_SEC(kError, 1, "proxy", "handshake failed", {{"reason", r}});
// Every function may be called from any thread.

#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/log/field.h"
#include "common/log/logger.h"
#include "common/log/rate_limiter.h"

namespace tandem::log {

inline Logger& Default() { return Logger::Default(); }

inline void Log(Level level, std::string_view component, std::string_view message,
                absl::Span<const Field> fields = {}) {
  Logger::Default().Log(level, component, message, fields);
}
inline void Debug(std::string_view component, std::string_view message,
                  absl::Span<const Field> fields = {}) {
  Log(Level::kDebug, component, message, fields);
}
inline void Info(std::string_view component, std::string_view message,
                 absl::Span<const Field> fields = {}) {
  Log(Level::kInfo, component, message, fields);
}
inline void Warn(std::string_view component, std::string_view message,
                 absl::Span<const Field> fields = {}) {
  Log(Level::kWarn, component, message, fields);
}
inline void Error(std::string_view component, std::string_view message,
                  absl::Span<const Field> fields = {}) {
  Log(Level::kError, component, message, fields);
}

// Logs through `limiter` to `logger`: writes the line if the level is enabled and the
// limiter allows it, adding a field suppressed=N when N earlier lines were dropped.
// Returns whether it wrote.
bool LogLimited(Logger& logger, RateLimiter& limiter, Level level,
                std::string_view component, std::string_view message,
                absl::Span<const Field> fields = {});
// The same on the process-wide logger.
bool LogLimited(RateLimiter& limiter, Level level, std::string_view component,
                std::string_view message, absl::Span<const Field> fields = {});

// Logs at info where a listener is bound once any port 0 is resolved, e.g.
// "listening listener=metrics address=127.0.0.1:41234" (JSON: "listener":"metrics",
// "address":"..."): one line per listener, which tests and operators read the bound
// address from. `address` is the configured "host:port" or "[v6]:port"; its port is
// replaced by `bound_port`.
void Listening(std::string_view component, std::string_view listener,
               std::string_view address, int bound_port);

// Applies the --log-level / --log-format flags every tandem binary takes to the
// process-wide logger; an empty value keeps the default (info, text).
// InvalidArgument names the flag and the accepted values.
absl::Status ConfigureDefault(std::string_view level, std::string_view format);

}  // namespace tandem::log

// Logs at most once per `seconds` from this call site (a burst of 1), counting what
// it dropped. `level` is a Level enumerator name: kDebug, kInfo, kWarn, kError. The
// limiter is created on first use and never freed (no exit-time destruction order).
#define TANDEM_LOG_EVERY_N_SEC(level, seconds, component, message, ...)          \
  do {                                                                           \
    static ::tandem::log::RateLimiter* tandem_log_limiter_ =                     \
        new ::tandem::log::RateLimiter(1, ::absl::Seconds(seconds));             \
    ::tandem::log::LogLimited(*tandem_log_limiter_, ::tandem::log::Level::level, \
                              (component), (message)__VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

#endif  // TANDEM_COMMON_LOG_LOG_H_
