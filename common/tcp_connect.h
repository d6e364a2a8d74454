#ifndef TANDEM_COMMON_TCP_CONNECT_H_
#define TANDEM_COMMON_TCP_CONNECT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem {

// Connects a TCP socket to `host`:`port` (a name or an IP literal, IPv6 without
// brackets) before `deadline`: tries each address the resolver gives in turn, each
// connect non-blocking and bounded by what is left of the deadline. Returns a
// connected, blocking, close-on-exec socket whose reads and writes time out at the
// deadline (SO_RCVTIMEO/SO_SNDTIMEO; the caller may set others); the caller owns it.
// Errors are kUnavailable: "resolving HOST: <resolver's reason>", or "cannot connect to
// HOST:PORT: <reason for the last address>" (ETIMEDOUT's text once the deadline
// passed). Any thread; blocks the caller.
absl::StatusOr<int> ConnectTcp(const std::string& host, const std::string& port,
                               absl::Time deadline);

}  // namespace tandem

#endif  // TANDEM_COMMON_TCP_CONNECT_H_
