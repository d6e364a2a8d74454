#include "controlplane/ca/serving_certificate_renewer.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/registry.h"
#include "common/pki/certificate.h"
#include "common/pki/certificate_authority.h"
#include "common/pki/trust_bundle.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/temp_dir.h"

namespace tandem::controlplane {
namespace {

// Records what the renewer installs; can be told to refuse.
class RecordingInstaller {
 public:
  ServingCertificateRenewer::Install Function() {
    return [this](const ServingCertificate& cert) -> absl::Status {
      absl::MutexLock lock(&mu_);
      if (refuse_) return absl::InternalError("server refused the certificate");
      installed_.push_back(cert);
      return absl::OkStatus();
    };
  }
  void set_refuse(bool refuse) {
    absl::MutexLock lock(&mu_);
    refuse_ = refuse;
  }
  // Waits (bounded) until `n` certificates were installed; returns them.
  std::vector<ServingCertificate> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    wanted_ = n;
    mu_.AwaitWithTimeout(absl::Condition(this, &RecordingInstaller::Enough),
                         absl::Seconds(20));
    return installed_;
  }

 private:
  bool Enough() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return installed_.size() >= wanted_;
  }

  mutable absl::Mutex mu_;
  size_t wanted_ ABSL_GUARDED_BY(mu_) = 0;
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<ServingCertificate> installed_ ABSL_GUARDED_BY(mu_);
};

class ServingCertificateRenewerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core_options_.root_dir = dir_.path() + "/root";
    core_ = *CaCore::Create(core_options_, absl::Now());
    options_.name = "grpc";
    options_.dns_names = {"tandem-ca", "localhost"};
    options_.ip_addresses = {"127.0.0.1"};
    options_.registry = &registry_;
    options_.metric_prefix = "test_serving_certificate";
  }
  // Whether `cert`'s chain verifies against `root` alone.
  static bool ChainsTo(const ServingCertificate& cert, const pki::Certificate& root) {
    absl::StatusOr<std::vector<pki::Certificate>> chain =
        pki::Certificate::ChainFromPem(cert.chain_pem);
    absl::StatusOr<pki::TrustBundle> bundle = pki::TrustBundle::FromCertificates({root});
    return chain.ok() && bundle.ok() && bundle->Verify(*chain, absl::Now()).ok();
  }
  uint64_t Renewals(const std::string& result) {
    return registry_
        .GetCounter("test_serving_certificate_renewals_total",
                    "Re-issues of the grpc serving certificate, by result.",
                    {{"result", result}})
        .Value();
  }

  testing::TempDir dir_{"tandem-renewer-test"};
  CaCoreOptions core_options_;
  std::unique_ptr<CaCore> core_;
  metrics::Registry registry_;
  ServingCertificateRenewer::Options options_;
};

TEST_F(ServingCertificateRenewerTest, IssuesTheFirstCertificateFromTheSigningRoot) {
  absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>> renewer =
      ServingCertificateRenewer::Create(options_, core_.get());
  ASSERT_TRUE(renewer.ok()) << renewer.status();
  const ServingCertificate& first = (*renewer)->first();
  absl::StatusOr<pki::Certificate> root =
      pki::Certificate::FromPem(core_->trust_bundle_pem());
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(ChainsTo(first, *root));
  EXPECT_EQ((*renewer)->current_serial(), first.serial_hex);
  EXPECT_LE(first.not_after - absl::Now(), absl::Hours(24) + absl::Seconds(1));
}

TEST_F(ServingCertificateRenewerTest, RenewsAtHalfLifeAndInstallsTheNewCertificate) {
  options_.ttl = absl::Seconds(2);  // renewed after 0.8-1 s
  std::unique_ptr<ServingCertificateRenewer> renewer =
      *ServingCertificateRenewer::Create(options_, core_.get());
  RecordingInstaller installer;
  renewer->Start(installer.Function());
  std::vector<ServingCertificate> installed = installer.WaitFor(1);
  ASSERT_GE(installed.size(), 1u);
  EXPECT_NE(installed[0].serial_hex, renewer->first().serial_hex);
  // Counted after `install` returned.
  EXPECT_TRUE(testing::WaitFor([&] { return Renewals("ok") >= 1; }, absl::Seconds(20)));
  EXPECT_EQ(Renewals("error"), 0u);
}

TEST_F(ServingCertificateRenewerTest, ReissuesFromTheNewRootAtOnceWhenAskedAfterAReload) {
  std::unique_ptr<ServingCertificateRenewer> renewer =
      *ServingCertificateRenewer::Create(options_, core_.get());  // 24 h: no renewal due
  RecordingInstaller installer;
  renewer->Start(installer.Function());
  pki::CertificateAuthority next =
      *pki::CertificateAuthority::CreateRoot({.common_name = "next root"}, absl::Now());
  for (auto [file, pem] : {std::pair{"ca-key.pem", *next.key().ToPem()},
                           std::pair{"ca-cert.pem", next.certificate().ToPem()}}) {
    const std::string path = core_options_.root_dir + "/" + file;
    std::filesystem::remove(path);
    std::ofstream(path) << pem;
    ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  }
  ASSERT_TRUE(*core_->Reload(absl::Now()));
  EXPECT_FALSE(ChainsTo(renewer->first(), next.root()));

  renewer->RenewNow();
  std::vector<ServingCertificate> installed = installer.WaitFor(1);
  ASSERT_EQ(installed.size(), 1u);
  EXPECT_TRUE(ChainsTo(installed[0], next.root()));
  // The renewer records it after `install` returned.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return renewer->current_serial() == installed[0].serial_hex; },
      absl::Seconds(20)));
}

TEST_F(ServingCertificateRenewerTest,
       KeepsTheCurrentCertificateWhenTheServerRefusesANewOne) {
  std::unique_ptr<ServingCertificateRenewer> renewer =
      *ServingCertificateRenewer::Create(options_, core_.get());
  RecordingInstaller installer;
  installer.set_refuse(true);
  renewer->Start(installer.Function());
  renewer->RenewNow();
  EXPECT_TRUE(
      testing::WaitFor([&] { return Renewals("error") >= 1; }, absl::Seconds(20)));
  EXPECT_EQ(renewer->current_serial(), renewer->first().serial_hex);
  // The retry (backoff from 200 ms) installs once the server takes it.
  installer.set_refuse(false);
  std::vector<ServingCertificate> installed = installer.WaitFor(1);
  ASSERT_EQ(installed.size(), 1u);
  // The renewer records it after `install` returned.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return renewer->current_serial() == installed[0].serial_hex; },
      absl::Seconds(20)));
}

TEST_F(ServingCertificateRenewerTest, RefusesNoNamesABadNameAndANonPositiveTtl) {
  ServingCertificateRenewer::Options nameless = options_;
  nameless.dns_names.clear();
  nameless.ip_addresses.clear();
  absl::StatusOr<std::unique_ptr<ServingCertificateRenewer>> refused =
      ServingCertificateRenewer::Create(nameless, core_.get());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            "grpc certificate: at least one DNS name or IP is required");
  ServingCertificateRenewer::Options timeless = options_;
  timeless.ttl = absl::ZeroDuration();
  refused = ServingCertificateRenewer::Create(timeless, core_.get());
  EXPECT_EQ(refused.status().message(), "grpc certificate: the TTL must be positive");
  ServingCertificateRenewer::Options bad_name = options_;
  bad_name.dns_names = {"tandem ca"};
  refused = ServingCertificateRenewer::Create(bad_name, core_.get());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), "grpc certificate: bad DNS name \"tandem ca\"");
}

}  // namespace
}  // namespace tandem::controlplane
