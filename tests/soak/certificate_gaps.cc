#include "tests/soak/certificate_gaps.h"

namespace tandem::testing {

std::vector<CertificateGap> FindGaps(const std::vector<ServedCertificate>& served,
                                     absl::Time run_end) {
  std::vector<CertificateGap> gaps;
  for (size_t i = 0; i < served.size(); ++i) {
    absl::Time next = i + 1 < served.size() ? served[i + 1].first_seen : run_end;
    if (served[i].not_after < next) gaps.push_back({.when = {served[i].not_after, next}});
  }
  return gaps;
}

void ExcuseGaps(const std::vector<TimeInterval>& obstacles, absl::Duration allowance,
                std::vector<CertificateGap>* gaps) {
  for (CertificateGap& gap : *gaps) {
    gap.excused = false;
    for (size_t i = 0; i < obstacles.size(); ++i) {
      const TimeInterval& o = obstacles[i];
      if (o.start <= gap.when.start && gap.when.start <= o.end + allowance) {
        gap.excused = true;
        gap.excused_by = static_cast<int>(i);
        gap.expired_after_fault = gap.when.start - o.end;
        break;
      }
    }
    if (!gap.excused) continue;
    gap.recovered_after = gap.excused_by;
    for (size_t i = 0; i < obstacles.size(); ++i) {
      const TimeInterval& o = obstacles[i];
      if (o.start <= gap.when.end && gap.when.start <= o.end &&
          o.end > obstacles[gap.recovered_after].end) {
        gap.recovered_after = static_cast<int>(i);
      }
    }
    gap.recovered_after_fault = gap.when.end - obstacles[gap.recovered_after].end;
  }
}

bool InsideExcusedGap(const std::vector<CertificateGap>& gaps, absl::Time start,
                      absl::Time end) {
  for (const CertificateGap& gap : gaps) {
    if (gap.excused && start <= gap.when.end && gap.when.start <= end) return true;
  }
  return false;
}

}  // namespace tandem::testing
