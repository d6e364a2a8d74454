#include "controlplane/serve_flags.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem::controlplane {
namespace {

// The flags these tests pass (main.cc knows every one of `serve`'s).
const std::vector<std::string_view> kKnown = {"root-dir",         "root-dir-mode",
                                              "listen",           "trust-domain",
                                              "audience",         "issuer",
                                              "default-ttl",      "max-ttl",
                                              "dns-names",        "ip-addresses",
                                              "token-public-key", "token-jwks",
                                              "token-review",     "kube-api-server",
                                              "kube-ca-file",     "kube-token-file",
                                              "kube-server-name", "extra-roots",
                                              "policy-poll",      "root-reload-interval",
                                              "state-dir",        "admin"};

Flags Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  absl::StatusOr<Flags> flags =
      Flags::Parse(static_cast<int>(argv.size()), argv.data(), 0, kKnown);
  EXPECT_TRUE(flags.ok()) << flags.status();
  return *std::move(flags);
}

void ExpectRefused(const std::vector<std::string>& args, absl::StatusCode code,
                   const std::string& message) {
  absl::StatusOr<CaServerOptions> options = CaServerOptionsFromFlags(Parse(args));
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), code) << options.status();
  EXPECT_EQ(options.status().message(), message);
}

TEST(CaServerOptionsFromFlagsTest, RefusesMalformedDurations) {
  ExpectRefused({"--default-ttl=soon"}, absl::StatusCode::kInvalidArgument,
                "--default-ttl: not a positive duration (e.g. 1h, 30s)");
  ExpectRefused({"--max-ttl=0s"}, absl::StatusCode::kInvalidArgument,
                "--max-ttl: not a positive duration");
  ExpectRefused({"--policy-poll=-1s"}, absl::StatusCode::kInvalidArgument,
                "--policy-poll: not a positive duration (e.g. 1s, 500ms)");
  ExpectRefused({"--root-reload-interval=soon"}, absl::StatusCode::kInvalidArgument,
                "--root-reload-interval: not a positive duration (e.g. 5s), or 0");
}

TEST(CaServerOptionsFromFlagsTest, RefusesUnknownRootDirMode) {
  ExpectRefused({"--root-dir-mode=world-readable"}, absl::StatusCode::kInvalidArgument,
                "--root-dir-mode: owner-only or secret-volume");
}

TEST(CaServerOptionsFromFlagsTest, RefusesFilesItCannotRead) {
  const std::string missing = ::testing::TempDir() + "/serve-flags-test-missing";
  ExpectRefused({"--token-public-key=" + missing}, absl::StatusCode::kInvalidArgument,
                "--token-public-key: cannot read " + missing);
  ExpectRefused({"--token-jwks=" + missing}, absl::StatusCode::kInvalidArgument,
                "--token-jwks: cannot read " + missing);
  ExpectRefused({"--extra-roots=" + missing}, absl::StatusCode::kInvalidArgument,
                "--extra-roots: cannot read " + missing);
  ExpectRefused(
      {"--token-review", "--kube-api-server=127.0.0.1:6443", "--kube-ca-file=" + missing},
      absl::StatusCode::kNotFound,
      "--token-review: --kube-ca-file: cannot read " + missing);
}

TEST(CaServerOptionsFromFlagsTest, DefaultsWithoutFlags) {
  absl::StatusOr<CaServerOptions> options = CaServerOptionsFromFlags(Parse({}));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->core.root_dir, "/var/lib/tandem-ca");
  EXPECT_EQ(options->core.trust_domain, "cluster.local");
  EXPECT_EQ(options->core.key_permissions, KeyPermissions::kOwnerOnly);
  EXPECT_EQ(options->listen_address, "0.0.0.0:15012");
  EXPECT_EQ(options->audience, "istio-ca");
  EXPECT_EQ(options->issuer, "");
  EXPECT_TRUE(options->token_review.api_server.empty());
  EXPECT_EQ(options->policy, nullptr);
  EXPECT_EQ(options->revocations, nullptr);
}

TEST(CaServerOptionsFromFlagsTest, ReadsFlagsAndTheFilesTheyName) {
  const std::string key = ::testing::TempDir() + "/serve-flags-test-key.pem";
  const std::string ca = ::testing::TempDir() + "/serve-flags-test-ca.pem";
  std::ofstream(key) << "public key";
  std::ofstream(ca) << "api server ca";
  absl::StatusOr<CaServerOptions> options = CaServerOptionsFromFlags(
      Parse({"--root-dir=/srv/ca", "--root-dir-mode=secret-volume",
             "--listen=127.0.0.1:0", "--trust-domain=example.org", "--default-ttl=30m",
             "--max-ttl=2h", "--dns-names=ca.example.org,,ca", "--ip-addresses=127.0.0.1",
             "--token-public-key=" + key, "--token-review",
             "--kube-api-server=10.0.0.1:443", "--kube-ca-file=" + ca,
             "--kube-token-file=/run/token", "--kube-server-name=kubernetes",
             "--policy-poll=500ms", "--admin=127.0.0.1:0", "--state-dir=/srv/state"}));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->core.root_dir, "/srv/ca");
  EXPECT_EQ(options->core.key_permissions, KeyPermissions::kSecretVolume);
  EXPECT_EQ(options->core.trust_domain, "example.org");
  EXPECT_EQ(options->core.default_ttl, absl::Minutes(30));
  EXPECT_EQ(options->core.max_ttl, absl::Hours(2));
  EXPECT_EQ(options->core.server_dns_names,
            (std::vector<std::string>{"ca.example.org", "ca"}));
  EXPECT_EQ(options->core.server_ips, (std::vector<std::string>{"127.0.0.1"}));
  EXPECT_EQ(options->listen_address, "127.0.0.1:0");
  EXPECT_EQ(options->token_public_key_pem, "public key");
  EXPECT_EQ(options->token_review.api_server, "10.0.0.1:443");
  EXPECT_EQ(options->token_review.ca_pem, "api server ca");
  EXPECT_EQ(options->token_review.credential_token_path, "/run/token");
  EXPECT_EQ(options->token_review.server_name, "kubernetes");
  EXPECT_EQ(options->policy_poll_interval, absl::Milliseconds(500));
}

}  // namespace
}  // namespace tandem::controlplane
