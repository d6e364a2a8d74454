// The mesh as real processes (tandem-ca, tandem-agents, tandem-proxies on loopback)
// with what users bring from elsewhere: a CA made by the openssl command-line tool
// over an RSA key, as enterprise CAs are, and Istio's plug-in CA files.
#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/mesh_fixture.h"
#include "tests/integration/openssl_cli.h"

namespace tandem::testing {
namespace {

class MeshInteropTest : public MeshTest {
 protected:
  // Echo traffic through the mesh for 5 s (at least 11 connections per worker however
  // slow the machine): nothing fails, and the 3-second certificates rotate under it.
  void ExpectTrafficAcrossRotations() {
    const std::string accepted = "tandem_proxy_secret_updates_total{result=\"accepted\"}";
    double before = Metric(client_, accepted);
    TrafficReport report =
        RunEchoTraffic(client_.outbound, absl::Seconds(5),
                       /*short_workers=*/2, /*long_connections=*/1,
                       /*payload_bytes=*/4096, /*min_short_per_worker=*/11);
    EXPECT_EQ(report.short_failed, 0)
        << (report.errors.empty() ? "" : report.errors.front());
    EXPECT_EQ(report.long_failed, 0)
        << (report.errors.empty() ? "" : report.errors.front());
    EXPECT_GT(report.short_ok, 20);
    EXPECT_GE(Metric(client_, accepted) - before, 1) << "certificates must have rotated";
    EXPECT_EQ(Metric(server_, "tandem_proxy_secret_updates_total{result=\"refused\"}"),
              0);
  }
};

TEST_F(MeshInteropTest, CarriesTrafficAndRotatesUnderAnOpensslRsaRoot) {
  OpensslCli openssl(dir_);
  absl::StatusOr<std::string> key = openssl.GenerateKey("rsa-root", "RSA:3072");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> root = openssl.MakeRoot("rsa-root");
  ASSERT_TRUE(root.ok()) << root.status();
  // tandem-ca's root dir: owner-only, as the operator installs it.
  mesh_root_dir_ = "rsa-ca";
  const std::string root_dir = dir_ + "/" + mesh_root_dir_;
  ASSERT_EQ(mkdir(root_dir.c_str(), 0700), 0);
  Write(root_dir + "/ca-key.pem", *key);
  Write(root_dir + "/ca-cert.pem", *root);
  ASSERT_EQ(chmod((root_dir + "/ca-key.pem").c_str(), 0600), 0);
  ASSERT_EQ(chmod((root_dir + "/ca-cert.pem").c_str(), 0600), 0);

  StartMesh();
  EXPECT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), *root)
      << "the CA must publish the operator's RSA root as is";
  // 3-second certificates: several rotations under traffic, every handshake verifying
  // a leaf signed with sha256WithRSAEncryption.
  ExpectTrafficAcrossRotations();
}

// A user migrating from Istio mounts istiod's `cacerts` Secret as tandem-ca's root
// dir: the four files as Istio's tools/certs/Makefile.selfsigned.mk makes them with
// openssl (ca-cert.pem the cluster's intermediate alone, cert-chain.pem it then the
// root). The workloads trust the root only and verify chains through the intermediate.
TEST_F(MeshInteropTest, CarriesTrafficSigningWithIstiosCacertsFiles) {
  OpensslCli openssl(dir_);
  ASSERT_TRUE(openssl.GenerateKey("root", "RSA:2048").ok());
  absl::StatusOr<std::string> root = openssl.MakeRoot("root");
  ASSERT_TRUE(root.ok()) << root.status();
  absl::StatusOr<std::string> key = openssl.GenerateKey("cluster1", "RSA:2048");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> intermediate = openssl.MakeIntermediate("cluster1", "root");
  ASSERT_TRUE(intermediate.ok()) << intermediate.status();
  mesh_root_dir_ = "cacerts";
  const std::string root_dir = dir_ + "/" + mesh_root_dir_;
  ASSERT_EQ(mkdir(root_dir.c_str(), 0700), 0);
  for (auto [file, text] :
       {std::pair{"ca-key.pem", *key}, std::pair{"ca-cert.pem", *intermediate},
        std::pair{"cert-chain.pem", *intermediate + *root},
        std::pair{"root-cert.pem", *root}}) {
    Write(root_dir + "/" + file, text);
    ASSERT_EQ(chmod((root_dir + "/" + file).c_str(), 0600), 0);
  }

  StartMesh();  // the agents' --ca-root is the bundle: the root alone
  EXPECT_EQ(HttpGet(ca_metrics_, "/trust-bundle"), *root);
  ExpectTrafficAcrossRotations();
}

}  // namespace
}  // namespace tandem::testing
