#ifndef TANDEM_CONTROLPLANE_AUTH_SIGNING_KEY_H_
#define TANDEM_CONTROLPLANE_AUTH_SIGNING_KEY_H_

#include <string>

#include "absl/status/status.h"

namespace tandem::controlplane {

// Generates a P-256 token signing key and writes it as PEM to `path`, created
// owner-only (0600) and never overwritten.
absl::Status WriteNewSigningKey(const std::string& path);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_AUTH_SIGNING_KEY_H_
