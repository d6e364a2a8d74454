#include "common/flags.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem {

absl::StatusOr<Flags> Flags::Parse(int argc, char** argv, int first,
                                   const std::vector<std::string_view>& known) {
  Flags flags;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument \"", arg, "\" (flags look like --name=value)"));
    }
    size_t eq = arg.find('=');
    std::string name =
        arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    bool is_known = false;
    for (std::string_view k : known) is_known |= name == k;
    if (!is_known)
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    flags.values_[name] = eq == std::string::npos ? "true" : arg.substr(eq + 1);
  }
  return flags;
}

std::string Flags::Get(std::string_view name, const std::string& fallback) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? fallback : it->second;
}

absl::StatusOr<absl::Duration> Flags::GetDuration(std::string_view name,
                                                  absl::Duration fallback,
                                                  absl::Duration min) const {
  if (!Has(name)) return fallback;
  absl::Duration d;
  if (!absl::ParseDuration(Get(name), &d) || d < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", std::string(name), ": \"", Get(name),
                     "\" is not a duration of at least ", absl::FormatDuration(min)));
  }
  return d;
}

}  // namespace tandem
