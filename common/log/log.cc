#include "common/log/log.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem::log {

bool LogLimited(Logger& logger, RateLimiter& limiter, Level level,
                std::string_view component, std::string_view message,
                absl::Span<const Field> fields) {
  // Disabled levels do not spend tokens.
  if (!logger.Enabled(level)) return false;
  uint64_t suppressed = 0;
  if (!limiter.Allow(&suppressed)) return false;
  if (suppressed == 0) {
    logger.Log(level, component, message, fields);
  } else {
    std::vector<Field> all(fields.begin(), fields.end());
    all.emplace_back("suppressed", suppressed);
    logger.Log(level, component, message, all);
  }
  return true;
}

bool LogLimited(RateLimiter& limiter, Level level, std::string_view component,
                std::string_view message, absl::Span<const Field> fields) {
  return LogLimited(Logger::Default(), limiter, level, component, message, fields);
}

void Listening(std::string_view component, std::string_view listener,
               std::string_view address, int bound_port) {
  std::string_view host = address.substr(0, address.rfind(':'));
  Info(component, "listening",
       {{"listener", listener},
        {"address", absl::StrCat(std::string(host), ":", bound_port)}});
}

absl::Status ConfigureDefault(std::string_view level, std::string_view format) {
  if (!level.empty()) {
    absl::StatusOr<Level> parsed = ParseLevel(level);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-level: ", parsed.status().message()));
    }
    Default().SetLevel(*parsed);
  }
  if (!format.empty()) {
    absl::StatusOr<Format> parsed = ParseFormat(format);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-format: ", parsed.status().message()));
    }
    Default().SetFormat(*parsed);
  }
  return absl::OkStatus();
}

}  // namespace tandem::log
