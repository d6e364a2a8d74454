#ifndef TANDEM_CONTROLPLANE_REVOCATION_FILE_REVOCATION_BACKEND_H_
#define TANDEM_CONTROLPLANE_REVOCATION_FILE_REVOCATION_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controlplane/revocation/revocation_backend.h"

namespace tandem::controlplane {

// The revocation list in <state_dir>/revocations.jsonl, mode 0600 in a 0700 directory
// (created if absent; refused if group or others can access it), replaced as a whole
// on every change: temporary file, fsync, rename, fsync of the directory, so a crash
// leaves the old or the new list, never half of one. One process writes it.
// Threading: not thread-safe; RevocationStore serialises the calls.
class FileRevocationBackend : public RevocationBackend {
 public:
  static absl::StatusOr<std::unique_ptr<FileRevocationBackend>> Create(
      std::string state_dir);

  absl::StatusOr<std::string> Load() override;
  absl::StatusOr<std::string> Update(const Edit& edit) override;
  std::string name() const override { return path_; }

 private:
  FileRevocationBackend(std::string dir, std::string path)
      : dir_(std::move(dir)), path_(std::move(path)) {}

  const std::string dir_;
  const std::string path_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_REVOCATION_FILE_REVOCATION_BACKEND_H_
