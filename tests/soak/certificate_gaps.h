#ifndef TANDEM_TESTS_SOAK_CERTIFICATE_GAPS_H_
#define TANDEM_TESTS_SOAK_CERTIFICATE_GAPS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tandem::testing {

// The rule that splits a soak run's failed connections into those nobody could have
// avoided and those that are bugs. Pure functions over times, so the rule has a
// table-driven test of its own (certificate_gaps_test.cc).
//
// A workload's *gap* is a time its proxy held no unexpired certificate: from the
// notAfter of the certificate it held until the proxy was first seen holding the next
// one (or until the run ended). Facts only: notAfter is read from the certificate the
// proxy serves (admin /certs), the end is when a poll's answer first showed the next.
//
// An *obstacle* is a time a fault kept the workload from renewing or from being fed:
// the CA killed until it serves again (both workloads), the workload's agent killed
// until the restarted one holds a certificate, its proxy's SDS stream severed until
// the relay lets it through.
//
// A gap is *excused* ("no valid certificate could exist") when its certificate ran out
// during an obstacle, or within `allowance` after one ended: the time a working mesh
// needs to get a fresh certificate through once the fault is gone (a CA round trip and
// an SDS push; the agent retries within a quarter of the remaining validity). Then the
// whole gap is excused, up to the next certificate, however long the recovery took: a
// workload whose certificate ran out while the CA was down backs off before asking
// again, and that is the design. A gap that began with no obstacle in force is a bug
// (e.g. a retry backoff that sleeps past the expiry it should prevent).
//
// A failed connection is *inside* when the time it ran overlaps an excused gap of
// either peer; otherwise it is *outside*, and a soak run must have none. A break of an
// established keep-alive connection is always outside: certificates are checked only
// at the handshake, so no gap can excuse it.

struct TimeInterval {
  absl::Time start, end;
};

// One certificate as the proxy served it.
struct ServedCertificate {
  absl::Time first_seen;  // the first poll that saw it
  std::string serial;
  absl::Time not_after;
};

struct CertificateGap {
  TimeInterval when;
  bool excused = false;
  // For an excused gap: when the certificate ran out, from the end of the obstacle
  // that excused it (negative: during the fault), and when the next one came, from the
  // end of the last obstacle that overlapped the gap (a second fault during a recovery
  // restarts it: that is how long the workload stayed without a certificate once the
  // faults were over).
  absl::Duration expired_after_fault = absl::ZeroDuration();
  absl::Duration recovered_after_fault = absl::ZeroDuration();
  int excused_by = -1;       // the index of the obstacle that excused it
  int recovered_after = -1;  // the index of the last obstacle that overlapped it
};

// The gaps in `served` (in the order seen, one entry per certificate) up to `run_end`.
std::vector<CertificateGap> FindGaps(const std::vector<ServedCertificate>& served,
                                     absl::Time run_end);

// Marks each gap excused or not against `obstacles` (as above).
void ExcuseGaps(const std::vector<TimeInterval>& obstacles, absl::Duration allowance,
                std::vector<CertificateGap>* gaps);

// True when [start, end] overlaps an excused gap in `gaps`.
bool InsideExcusedGap(const std::vector<CertificateGap>& gaps, absl::Time start,
                      absl::Time end);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_SOAK_CERTIFICATE_GAPS_H_
