#ifndef TANDEM_COMMON_LOG_LOGGER_H_
#define TANDEM_COMMON_LOG_LOGGER_H_

#include <atomic>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/log/field.h"

namespace tandem::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

// Appends `s` JSON-escaped (no quotes, no truncation): control characters escaped,
// invalid UTF-8 bytes replaced by U+FFFD. For JSON written outside log lines too.
void AppendJsonEscaped(std::string& out, std::string_view s);
// `s` as a JSON string literal, quotes included (AppendJsonEscaped inside quotes).
std::string JsonQuote(std::string_view s);

// Returns "debug", "info", "warn" or "error".
const char* LevelName(Level level);
// Parses those names (case-insensitive; "warning" too). InvalidArgument otherwise.
absl::StatusOr<Level> ParseLevel(std::string_view name);
// Parses "text" or "json". InvalidArgument otherwise.
absl::StatusOr<Format> ParseFormat(std::string_view name);

// Writes log lines to a file descriptor, text or JSON lines, one write(2) per line so
// lines from several threads never interleave.
//
// Each line has a UTC timestamp (RFC 3339, microseconds), the level, the component
// ("proxy", "agent", "ca", ...), the message and key/value fields:
//   text: 2026-11-24T17:46:07.123456Z INFO  proxy: connection closed conn_id=42 peer="a
//   b" json: {"time":"2026-11-24T17:46:07.123456Z","level":"info","component":"proxy",
//          "msg":"connection closed","conn_id":42,"peer":"a b"}
// Untrusted text (messages, values, keys) is escaped in both formats: control
// characters never reach the output raw (no forged lines), and JSON output is valid
// UTF-8 (invalid bytes become U+FFFD). A field whose key is time/level/component/msg is
// written as "_<key>" in JSON.
//
// Threading: any thread may call any method. The level and format are atomics, so they
// can be changed at run time (e.g. from an admin endpoint) while others log.
class Logger {
 public:
  struct Options {
    Level level = Level::kInfo;
    Format format = Format::kText;
    int fd = 2;  // not owned
  };

  explicit Logger(Options options);
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Returns the process-wide logger (stderr, text, info; never destroyed).
  static Logger& Default();

  // Any thread.
  void SetLevel(Level level) { level_.store(level, std::memory_order_relaxed); }
  Level level() const { return level_.load(std::memory_order_relaxed); }
  void SetFormat(Format format) { format_.store(format, std::memory_order_relaxed); }
  Format format() const { return format_.load(std::memory_order_relaxed); }
  bool Enabled(Level level) const { return level >= this->level(); }

  // Writes one line if `level` is enabled. Any thread.
  void Log(Level level, std::string_view component, std::string_view message,
           absl::Span<const Field> fields = {});

  // Returns the line Log() would write at `now`, with its trailing newline. Pure.
  static std::string FormatLine(Format format, absl::Time now, Level level,
                                std::string_view component, std::string_view message,
                                absl::Span<const Field> fields);

 private:
  std::atomic<Level> level_;
  std::atomic<Format> format_;
  const int fd_;
};

}  // namespace tandem::log

#endif  // TANDEM_COMMON_LOG_LOGGER_H_
