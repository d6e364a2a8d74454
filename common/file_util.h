#ifndef TANDEM_COMMON_FILE_UTIL_H_
#define TANDEM_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"

namespace tandem {

// Reads a whole (small) file: config, PEM, token. kNotFound names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace tandem

#endif  // TANDEM_COMMON_FILE_UTIL_H_
