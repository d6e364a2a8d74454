#include "common/version.h"

namespace tandem {

// Defined here only, so a version bump recompiles one file.
const char* Version() { return TANDEM_VERSION; }

}  // namespace tandem
