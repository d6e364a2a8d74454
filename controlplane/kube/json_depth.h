#ifndef TANDEM_CONTROLPLANE_KUBE_JSON_DEPTH_H_
#define TANDEM_CONTROLPLANE_KUBE_JSON_DEPTH_H_

#include "absl/strings/string_view.h"

namespace tandem::controlplane {

// Kubernetes objects nest a dozen levels; the cap keeps nlohmann's recursive parser,
// dump and destructor off a deep stack when the API server's bytes are parsed.
inline constexpr int kMaxApiJsonDepth = 64;

// True when no array or object in the JSON `text` nests deeper than `max_depth`
// (brackets inside strings do not count). A scan of the bytes, before any parse.
bool JsonNestsWithin(absl::string_view text, int max_depth);

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_KUBE_JSON_DEPTH_H_
