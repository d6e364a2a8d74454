#ifndef TANDEM_TANDEMCTL_CHECK_H_
#define TANDEM_TANDEMCTL_CHECK_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tandem::tandemctl {

struct CheckOptions {
  // tandem-ca's loopback admin endpoint (--admin): trust bundle and policy streams.
  std::string admin = "127.0.0.1:15010";
  // tandem-ca's gRPC address (--listen).
  std::string ca_address = "127.0.0.1:15012";
  // The roots the workloads are given (the tandem-ca-root ConfigMap, --ca-root of the
  // agents), and the file's name for messages.
  std::string ca_root_pem;
  std::string ca_root_name;
  // tandem-ca's injector webhook (--injector-listen); empty: not checked.
  std::string injector_address;
  std::string injector_server_name = "tandem-injector.tandem-system.svc";
  // A proxy's certificate expiring within this is reported.
  absl::Duration expiry_warning = absl::Minutes(10);
  absl::Duration timeout = absl::Seconds(5);
};

// One finding of `tandemctl check`.
struct CheckResult {
  std::string name;  // "ca", "trust-bundle", "injector", "proxies", "proxy <pod>"
  bool ok = false;
  std::string message;  // what was found
  std::string hint;     // failures: where to look further
};

// Runs every check against the live processes, in order: ca, trust-bundle, injector
// (when configured), proxies (one result per proxy that fails, else one summary).
// Blocking (each network step bounded by options.timeout); any thread.
std::vector<CheckResult> RunChecks(const CheckOptions& options, absl::Time now);

// Returns "ok    NAME: MESSAGE" or "FAIL  NAME: MESSAGE; look further: HINT".
std::string FormatCheck(const CheckResult& result);

}  // namespace tandem::tandemctl

#endif  // TANDEM_TANDEMCTL_CHECK_H_
