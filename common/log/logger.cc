#include "common/log/logger.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::log {
namespace {

// Longest message, key or value written; the rest is cut (a peer controls some values).
constexpr size_t kMaxStringBytes = 4096;

// Returns the length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100;
  };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    unsigned b = byte(k);
    return b >= lo && b <= hi;
  };
  unsigned b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

std::string_view Truncated(std::string_view s, bool* cut) {
  *cut = s.size() > kMaxStringBytes;
  return *cut ? s.substr(0, kMaxStringBytes) : s;
}

// Appends the JSON string literal for `s` (cut at kMaxStringBytes), quotes included.
void AppendJsonString(std::string& out, std::string_view s) {
  bool cut;
  s = Truncated(s, &cut);
  out += '"';
  AppendJsonEscaped(out, s);
  if (cut) out += "...";
  out += '"';
}

// Appends `s` for a text line: backslash, control characters and invalid UTF-8 are
// escaped (\n, \t, \xNN), so one call can never produce more than one line.
void AppendTextEscaped(std::string& out, std::string_view s, bool escape_quote) {
  bool cut;
  s = Truncated(s, &cut);
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = Utf8SequenceLength(s, i);
    if (len > 1) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (len == 0 || c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  if (cut) out += "...";
}

// Quotes a text value when it would otherwise be ambiguous (logfmt style).
void AppendTextValue(std::string& out, std::string_view value) {
  bool quote = value.empty();
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') {
      quote = true;
      break;
    }
  }
  if (quote) out += '"';
  AppendTextEscaped(out, value, /*escape_quote=*/quote);
  if (quote) out += '"';
}

// Keys come from code, but are still reduced to [A-Za-z0-9_.-].
void AppendTextKey(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  for (char c : key.substr(0, kMaxStringBytes)) {
    bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
              c == '.' || c == '-';
    out += ok ? c : '_';
  }
}

const char* UpperLevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "?";
}

bool IsReservedJsonKey(std::string_view key) {
  return key == "time" || key == "level" || key == "component" || key == "msg";
}

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = Utf8SequenceLength(s, i);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (len > 1) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  AppendJsonEscaped(out, s);
  out += '"';
  return out;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "?";
}

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level \"", lower, "\" (debug, info, warn, error)"));
}

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "text") return Format::kText;
  if (lower == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log format \"", lower, "\" (text, json)"));
}

Logger::Logger(Options options)
    : level_(options.level), format_(options.format), fd_(options.fd) {}

Logger& Logger::Default() {
  static Logger* logger = new Logger(Options{});
  return *logger;
}

std::string Logger::FormatLine(Format format, absl::Time now, Level level,
                               std::string_view component, std::string_view message,
                               absl::Span<const Field> fields) {
  std::string time = absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", now, absl::UTCTimeZone());
  std::string out;
  out.reserve(128);
  if (format == Format::kJson) {
    absl::StrAppend(&out, "{\"time\":\"", time, "\",\"level\":\"", LevelName(level),
                    "\",\"component\":");
    AppendJsonString(out, component);
    out += ",\"msg\":";
    AppendJsonString(out, message);
    for (const Field& field : fields) {
      out += ',';
      if (IsReservedJsonKey(field.key())) {
        AppendJsonString(out, "_" + field.key());
      } else {
        AppendJsonString(out, field.key());
      }
      out += ':';
      if (field.kind() == Field::Kind::kString) {
        AppendJsonString(out, field.value());
      } else {
        out += field.value();
      }
    }
    out += "}\n";
    return out;
  }
  absl::StrAppend(&out, time, " ", UpperLevelName(level), " ");
  AppendTextEscaped(out, component, /*escape_quote=*/false);
  out += ": ";
  AppendTextEscaped(out, message, /*escape_quote=*/false);
  for (const Field& field : fields) {
    out += ' ';
    AppendTextKey(out, field.key());
    out += '=';
    AppendTextValue(out, field.value());
  }
  out += '\n';
  return out;
}

void Logger::Log(Level level, std::string_view component, std::string_view message,
                 absl::Span<const Field> fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(format(), absl::Now(), level, component, message, fields);
  // One write(2) per line: lines from different threads never interleave. A short
  // write (full pipe, signal) is finished with more writes rather than lost.
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = write(fd_, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a logging failure
    off += static_cast<size_t>(n);
  }
}

}  // namespace tandem::log
