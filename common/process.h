// Process-wide settings every tandem binary applies first thing in main().
#pragma once

namespace tandem {

// - SIGPIPE ignored: a peer closing a socket we write to is an EPIPE error, not death.
// - Abseil's mutex deadlock detection off. Debian builds Abseil without NDEBUG, so by
//   default every absl::Mutex lock records lock order in one process-wide graph under a
//   global lock: 97 ns per lock+unlock pair instead of 30 (measured on this machine), and
//   a point of contention between the proxy's workers. Tests keep the check on.
// - The soft limit on open files raised to the hard one, as Go's runtime does: every
//   agent is a socket in tandem-ca and every connection two in tandem-proxy, and a
//   systemd service or a shell starts with a soft limit of 1,024 (the hard one is what
//   the operator chose to allow).
void PrepareProcess();

}  // namespace tandem
