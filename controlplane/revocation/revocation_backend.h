#ifndef TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_BACKEND_H_
#define TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_BACKEND_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace tandem::controlplane {

// Where the revocation list lives between restarts and across replicas, as text (one
// proto3-JSON Revocation per line). Two implementations: a file in a state directory
// (standalone, FileRevocationBackend) and a ConfigMap every replica of tandem-ca
// shares (Kubernetes, ConfigMapRevocationBackend).
// Threading: implementations say; RevocationStore calls Update from one thread at a time.
class RevocationBackend {
 public:
  virtual ~RevocationBackend() = default;

  // Returns the stored list; "" when there is none yet.
  virtual absl::StatusOr<std::string> Load() = 0;

  // Replaces the stored list with edit(stored list), atomically with respect to other
  // writers (another replica's edit is never lost: `edit` may run again on a fresher
  // list), and returns the list now stored. An `edit` that returns its input writes
  // nothing; an `edit` error is returned as is.
  using Edit = std::function<absl::StatusOr<std::string>(const std::string& stored)>;
  virtual absl::StatusOr<std::string> Update(const Edit& edit) = 0;

  // Names the place in messages, e.g. the file's path.
  virtual std::string name() const = 0;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_REVOCATION_BACKEND_H_
