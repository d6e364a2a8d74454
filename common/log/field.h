#ifndef TANDEM_COMMON_LOG_FIELD_H_
#define TANDEM_COMMON_LOG_FIELD_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace tandem::log {

// One key/value pair of a log line: {"conn_id", 42}, {"peer", identity}, {"tls", true}.
// Strings are escaped when the line is written (never trusted); numbers and booleans
// become JSON numbers/booleans in JSON output.
//
// Threading: a value type; built and consumed by the logging thread.
class Field {
 public:
  enum class Kind { kString, kNumber, kBool };

  Field(std::string_view key, std::string_view value)
      : key_(key), value_(value), kind_(Kind::kString) {}
  Field(std::string_view key, const char* value)
      : Field(key, std::string_view(value == nullptr ? "" : value)) {}
  Field(std::string_view key, const std::string& value)
      : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), kind_(Kind::kBool) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  Field(std::string_view key, T value) : key_(key), kind_(Kind::kNumber) {
    if constexpr (std::is_floating_point_v<T>) {
      // Non-finite doubles are not JSON numbers: keep them as strings.
      if (!(value - value == 0)) kind_ = Kind::kString;
    }
    value_ = absl::StrCat(value);
  }

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  Kind kind() const { return kind_; }

 private:
  std::string key_;
  std::string value_;
  Kind kind_;
};

}  // namespace tandem::log

#endif  // TANDEM_COMMON_LOG_FIELD_H_
