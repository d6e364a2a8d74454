#ifndef TANDEM_COMMON_FLAGS_H_
#define TANDEM_COMMON_FLAGS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem {

// The command-line flags every tandem binary takes: --name=value, or a bare --name
// meaning "true". Unknown names and positional arguments are refused with a message
// naming them, so a typo never silently falls back to a default.
class Flags {
 public:
  // Parses argv[first..argc).
  // `known` is a vector, not an initializer_list, so callers may keep tables of them
  // (an initializer_list's array dies with the expression that made it).
  static absl::StatusOr<Flags> Parse(int argc, char** argv, int first,
                                     const std::vector<std::string_view>& known);

  bool Has(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  std::string Get(std::string_view name, const std::string& fallback = "") const;
  // `fallback` when absent; InvalidArgument "--name: ..." unless a duration >= `min`.
  absl::StatusOr<absl::Duration> GetDuration(std::string_view name,
                                             absl::Duration fallback,
                                             absl::Duration min = absl::Seconds(1)) const;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace tandem

#endif  // TANDEM_COMMON_FLAGS_H_
