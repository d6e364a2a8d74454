#include "common/log/logger.h"

#include <fcntl.h>
#include <unistd.h>

#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace tandem::log {
namespace {

// 2026-11-24T17:46:07.123456Z
const absl::Time kNow = absl::FromUnixMicros(1795542367123456);

TEST(LoggerFormatTest, FormatsTextLine) {
  EXPECT_EQ(
      Logger::FormatLine(Format::kText, kNow, Level::kInfo, "proxy", "connection closed",
                         {{"conn_id", 42},
                          {"peer", "spiffe://td/ns/a/sa/b"},
                          {"bytes", uint64_t{1234}},
                          {"close", "idle timeout"},
                          {"tls", true}}),
      "2026-11-24T17:46:07.123456Z INFO proxy: connection closed conn_id=42 "
      "peer=spiffe://td/ns/a/sa/b bytes=1234 close=\"idle timeout\" tls=true\n");
}

TEST(LoggerFormatTest, FormatsJsonLine) {
  EXPECT_EQ(
      Logger::FormatLine(Format::kJson, kNow, Level::kWarn, "agent", "renewal failed",
                         {{"attempt", 3},
                          {"backoff_s", 1.5},
                          {"ca", "127.0.0.1:15012"},
                          {"final", false}}),
      "{\"time\":\"2026-11-24T17:46:07.123456Z\",\"level\":\"warn\","
      "\"component\":\"agent\",\"msg\":\"renewal failed\",\"attempt\":3,"
      "\"backoff_s\":1.5,\"ca\":\"127.0.0.1:15012\",\"final\":false}\n");
}

TEST(LoggerFormatTest, EscapesJsonStringsAndReplacesInvalidUtf8) {
  std::string hostile = "a\"b\\c\nd\re\tf\x01g\x7f h\xc3\xa9 \xe6\x97\xa5 \xff \xe6\x97";
  EXPECT_EQ(Logger::FormatLine(Format::kJson, kNow, Level::kError, "proxy", hostile,
                               {{"peer", hostile}}),
            "{\"time\":\"2026-11-24T17:46:07.123456Z\",\"level\":\"error\","
            "\"component\":\"proxy\","
            "\"msg\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007f h\xc3\xa9 \xe6\x97\xa5 "
            "\\ufffd \\ufffd\\ufffd\","
            "\"peer\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007f h\xc3\xa9 \xe6\x97\xa5 "
            "\\ufffd \\ufffd\\ufffd\"}\n");
}

TEST(LoggerFormatTest, RejectsOverlongAndSurrogateUtf8InJson) {
  // Overlong '/', a UTF-16 surrogate, and a code point above U+10FFFF.
  std::string bad = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80";
  std::string line = Logger::FormatLine(Format::kJson, kNow, Level::kInfo, "c", bad, {});
  EXPECT_NE(line.find("\"msg\":\"\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
                      "\\ufffd\\ufffd\\ufffd\\ufffd\""),
            std::string::npos)
      << line;
}

TEST(LoggerFormatTest, KeepsReservedJsonKeysApartAndNonFiniteAsStrings) {
  std::string line = Logger::FormatLine(
      Format::kJson, kNow, Level::kInfo, "c", "m",
      {{"msg", "x"}, {"ratio", std::numeric_limits<double>::infinity()}});
  EXPECT_NE(line.find(",\"_msg\":\"x\",\"ratio\":\"inf\"}"), std::string::npos) << line;
}

TEST(LoggerFormatTest, TextNeverSplitsALine) {
  std::string line = Logger::FormatLine(
      Format::kText, kNow, Level::kError, "proxy", "bad\nFAKE LINE",
      {{"peer", "x\n2026-11-24T00:00:00Z INFO forged"}, {"we ird", "a=b"}, {"e", ""}});
  EXPECT_EQ(line,
            "2026-11-24T17:46:07.123456Z ERROR proxy: bad\\nFAKE LINE "
            "peer=\"x\\n2026-11-24T00:00:00Z INFO forged\" we_ird=\"a=b\" e=\"\"\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(LoggerFormatTest, TruncatesHugeValues) {
  std::string huge(100000, 'x');
  std::string line =
      Logger::FormatLine(Format::kJson, kNow, Level::kInfo, "c", "m", {{"v", huge}});
  EXPECT_LT(line.size(), 5000u);
  EXPECT_NE(line.find("xxx...\"}"), std::string::npos);
}

TEST(LoggerTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("INFO"), Level::kInfo);
  EXPECT_EQ(*ParseLevel("warning"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  EXPECT_EQ(ParseLevel("loud").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("text"), Format::kText);
  EXPECT_EQ(ParseFormat("xml").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_STREQ(LevelName(Level::kWarn), "warn");
}

std::string ReadAvailable(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(LoggerTest, FiltersByLevelChangedAtRunTime) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Logger logger({.level = Level::kInfo, .format = Format::kText, .fd = fds[1]});
  logger.Log(Level::kDebug, "c", "hidden");
  logger.Log(Level::kInfo, "c", "shown1");
  logger.SetLevel(Level::kDebug);
  logger.Log(Level::kDebug, "c", "shown2");
  logger.SetLevel(Level::kError);
  logger.Log(Level::kWarn, "c", "hidden");
  logger.SetFormat(Format::kJson);
  logger.Log(Level::kError, "c", "shown3");
  std::string out = ReadAvailable(fds[0]);
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  EXPECT_NE(out.find(" INFO c: shown1\n"), std::string::npos) << out;
  EXPECT_NE(out.find(" DEBUG c: shown2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\"level\":\"error\",\"component\":\"c\",\"msg\":\"shown3\"}\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace tandem::log
