// The free functions and macro over the default logger, and concurrent use (TSan).
#include "common/log/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace tandem::log {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "_" + std::to_string(getpid());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

// Points fd 2 (where the default logger writes) at a temp file while alive.
class StderrCapture {
 public:
  StderrCapture() : path_(TempPath("stderr")) {
    fflush(stderr);
    saved_ = dup(2);
    int fd =
        open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    dup2(fd, 2);
    close(fd);
  }
  ~StderrCapture() { Restore(); }
  std::string Finish() {
    Restore();
    std::string text = ReadFile(path_);
    unlink(path_.c_str());
    return text;
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

TEST(LogTest, FreeFunctionsWriteToDefaultLogger) {
  Default().SetLevel(Level::kInfo);
  StderrCapture capture;
  Debug("test", "hidden");
  Info("test", "connection closed", {{"conn_id", 7}, {"close", "eof"}});
  Warn("test", "slow");
  Error("test", "broken");
  std::vector<std::string> lines = Lines(capture.Finish());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find(" INFO test: connection closed conn_id=7 close=eof"),
            std::string::npos);
  EXPECT_NE(lines[1].find(" WARN test: slow"), std::string::npos);
  EXPECT_NE(lines[2].find(" ERROR test: broken"), std::string::npos);
}

TEST(LogTest, ListeningLineNamesTheListenerAndItsBoundAddress) {
  Default().SetLevel(Level::kInfo);
  StderrCapture capture;
  Listening("proxy", "outbound", "127.0.0.1:0", 41234);
  Listening("proxy", "admin", "[::1]:15000", 15000);
  std::vector<std::string> lines = Lines(capture.Finish());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" INFO proxy: listening listener=outbound "
                          "address=127.0.0.1:41234"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find(" listening listener=admin address=[::1]:15000"),
            std::string::npos)
      << lines[1];
}

TEST(LogTest, EveryNSecMacroLimitsAFloodFromOneCallSite) {
  Default().SetLevel(Level::kInfo);
  StderrCapture capture;
  for (int i = 0; i < 1000; ++i) {
    TANDEM_LOG_EVERY_N_SEC(kError, 3600, "proxy", "handshake failed",
                           {{"reason", "bad_identity"}, {"i", i}});
  }
  TANDEM_LOG_EVERY_N_SEC(kWarn, 3600, "proxy", "no fields");
  std::vector<std::string> lines = Lines(capture.Finish());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("handshake failed reason=bad_identity i=0"), std::string::npos);
  EXPECT_NE(lines[1].find("WARN proxy: no fields"), std::string::npos);
}

TEST(LogTest, LimitedLineReportsHowManyWereSuppressed) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Logger logger({.level = Level::kInfo, .format = Format::kJson, .fd = fds[1]});
  absl::Time now = absl::FromUnixSeconds(1000);
  RateLimiter limiter(1, absl::Seconds(1), [&now] { return now; });
  EXPECT_TRUE(LogLimited(logger, limiter, Level::kError, "p", "refused", {{"n", 1}}));
  EXPECT_FALSE(LogLimited(logger, limiter, Level::kError, "p", "refused", {{"n", 2}}));
  EXPECT_FALSE(LogLimited(logger, limiter, Level::kError, "p", "refused", {{"n", 3}}));
  // A disabled level neither writes nor spends a token.
  EXPECT_FALSE(LogLimited(logger, limiter, Level::kDebug, "p", "refused", {{"n", 4}}));
  now += absl::Seconds(1);
  EXPECT_TRUE(LogLimited(logger, limiter, Level::kError, "p", "refused", {{"n", 5}}));
  char buf[4096];
  ssize_t n = read(fds[0], buf, sizeof(buf));
  close(fds[0]);
  close(fds[1]);
  ASSERT_GT(n, 0);
  std::vector<std::string> lines = Lines(std::string(buf, static_cast<size_t>(n)));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("\"n\":1}"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"n\":5,\"suppressed\":2}"), std::string::npos) << lines[1];
}

TEST(LogTest, ConcurrentWritersNeverInterleaveLines) {
  std::string path = TempPath("concurrent_log");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  Logger logger({.level = Level::kInfo, .format = Format::kJson, .fd = fd});
  constexpr int kThreads = 4;
  constexpr int kLines = 500;
  std::atomic<bool> done{false};
  // Changes level and format while the writers run (they are atomics).
  std::thread toggler([&] {
    for (int i = 0; !done.load(); ++i) {
      logger.SetFormat(i % 2 == 0 ? Format::kText : Format::kJson);
      logger.SetLevel(i % 3 == 0 ? Level::kDebug : Level::kInfo);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> writers;
  std::string padding(300, 'p');  // lines well past any small-write atomicity luck
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        logger.Log(Level::kInfo, "w", "line", {{"t", t}, {"i", i}, {"pad", padding}});
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  toggler.join();
  close(fd);
  std::vector<std::string> lines = Lines(ReadFile(path));
  unlink(path.c_str());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const std::string& line : lines) {
    bool json = line.front() == '{' && line.back() == '}';
    bool text = line.find(" INFO w: line t=") != std::string::npos &&
                line.substr(line.size() - 4) == "pppp";
    ASSERT_TRUE(json || text) << line;
  }
}

TEST(LogTest, ConfigureDefaultAppliesFlagsAndRefusesUnknownValues) {
  Logger& logger = Default();
  const Level level = logger.level();
  const Format format = logger.format();
  ASSERT_TRUE(ConfigureDefault("debug", "json").ok());
  EXPECT_EQ(logger.level(), Level::kDebug);
  EXPECT_EQ(logger.format(), Format::kJson);
  ASSERT_TRUE(ConfigureDefault("", "").ok());  // empty keeps what is set
  EXPECT_EQ(logger.level(), Level::kDebug);
  absl::Status bad_level = ConfigureDefault("loud", "");
  EXPECT_EQ(bad_level.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_level.message().find("--log-level"), absl::string_view::npos);
  absl::Status bad_format = ConfigureDefault("", "xml");
  EXPECT_NE(bad_format.message().find("--log-format"), absl::string_view::npos);
  EXPECT_EQ(logger.format(), Format::kJson);  // a refused value changes nothing
  logger.SetLevel(level);
  logger.SetFormat(format);
}

}  // namespace
}  // namespace tandem::log
