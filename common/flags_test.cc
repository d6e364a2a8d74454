#include "common/flags.h"

#include <vector>

#include "gtest/gtest.h"

namespace tandem {
namespace {

absl::StatusOr<Flags> ParseArgs(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return Flags::Parse(static_cast<int>(argv.size()), argv.data(), 1,
                      {"config", "ttl", "verbose"});
}

TEST(FlagsTest, ReadsValuesAndBareFlags) {
  absl::StatusOr<Flags> flags = ParseArgs({"bin", "--config=/a=b", "--verbose"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->Get("config"), "/a=b");  // only the first '=' splits
  EXPECT_EQ(flags->Get("verbose"), "true");
  EXPECT_FALSE(flags->Has("ttl"));
  EXPECT_EQ(flags->Get("ttl", "1h"), "1h");
}

TEST(FlagsTest, RefusesUnknownNamesAndPositionalArguments) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"bin", "--confg=x"}, {"bin", "config"}, {"bin", "-c"}, {"bin", "--"}}) {
    absl::StatusOr<Flags> flags = ParseArgs(args);
    EXPECT_EQ(flags.status().code(), absl::StatusCode::kInvalidArgument) << args[1];
  }
  EXPECT_NE(ParseArgs({"bin", "--confg=x"}).status().message().find("--confg"),
            absl::string_view::npos);
}

TEST(FlagsTest, DurationsAreCheckedAgainstAMinimum) {
  absl::StatusOr<Flags> flags = ParseArgs({"bin", "--ttl=90s"});
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(*flags->GetDuration("ttl", absl::Hours(1)), absl::Seconds(90));
  EXPECT_EQ(*flags->GetDuration("config", absl::Hours(1)), absl::Hours(1));  // absent
  EXPECT_FALSE(flags->GetDuration("ttl", absl::Hours(1), absl::Minutes(5)).ok());
  absl::StatusOr<Flags> bad = ParseArgs({"bin", "--ttl=soon"});
  absl::StatusOr<absl::Duration> d = bad->GetDuration("ttl", absl::Hours(1));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("--ttl"), absl::string_view::npos);
}

}  // namespace
}  // namespace tandem
