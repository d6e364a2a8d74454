#ifndef TANDEM_PROXY_WAIT_READY_H_
#define TANDEM_PROXY_WAIT_READY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tandem::proxy {

struct WaitReadyOptions {
  std::string address = "127.0.0.1:15021";  // the proxy's health_address
  std::string path = "/healthz/ready";
  absl::Duration timeout = absl::Seconds(120);
  absl::Duration poll_interval = absl::Milliseconds(250);
};

// Asks http://<address><path> until it answers 200, for `tandem-proxy --wait-ready`:
// the classic-mode postStart hook that holds a pod's app containers until its proxy is
// ready (docs/injection.md). OK once ready; DeadlineExceeded (with the last answer or
// connection error) after `timeout`; InvalidArgument for a bad address. Blocks the
// calling thread; any thread.
absl::Status WaitUntilReady(const WaitReadyOptions& options);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_WAIT_READY_H_
