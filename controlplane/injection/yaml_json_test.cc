#include "controlplane/injection/yaml_json.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::injection {
namespace {

Json One(const std::string& text) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return docs.ok() && docs->size() == 1 ? (*docs)[0] : Json();
}

TEST(YamlJsonTest, ResolvesPlainScalarsLikeTheCoreSchema) {
  Json doc =
      One("a: 1\nb: -7\nc: 0x1f\nd: 0o17\ne: 1.5\nf: true\ng: False\nh: ~\ni: null\nj:\n"
          "k: hello\nl: .inf\nm: 1e3\nn: 99999999999999999999\no: 1.\np: .5e-3\nq: 1e\n"
          "r: 0x\ns: 0o8\nt: +12\nu: 1.2.3\nv: 0xFFFFFFFFFFFFFFFFFF\n");
  EXPECT_EQ(doc["a"], 1);
  EXPECT_EQ(doc["b"], -7);
  EXPECT_EQ(doc["c"], 31);
  EXPECT_EQ(doc["d"], 15);
  EXPECT_EQ(doc["e"], 1.5);
  EXPECT_EQ(doc["f"], true);
  EXPECT_EQ(doc["g"], false);
  EXPECT_TRUE(doc["h"].is_null());
  EXPECT_TRUE(doc["i"].is_null());
  EXPECT_TRUE(doc["j"].is_null());
  EXPECT_EQ(doc["k"], "hello");
  EXPECT_EQ(doc["l"], ".inf");  // no JSON form
  EXPECT_EQ(doc["m"], 1000.0);
  EXPECT_TRUE(doc["n"].is_number());
  EXPECT_EQ(doc["o"], 1.0);
  EXPECT_EQ(doc["p"], 0.0005);
  EXPECT_EQ(doc["q"], "1e");
  EXPECT_EQ(doc["r"], "0x");
  EXPECT_EQ(doc["s"], "0o8");
  EXPECT_EQ(doc["t"], 12);
  EXPECT_EQ(doc["u"], "1.2.3");
  EXPECT_EQ(doc["v"], "0xFFFFFFFFFFFFFFFFFF");  // too big for any integer
}

TEST(YamlJsonTest, QuotedAndBlockScalarsStayStrings) {
  Json doc = One("a: \"1\"\nb: 'true'\nc: !!str 15\nd: |\n  line\ne: \"null\"\n");
  EXPECT_EQ(doc["a"], "1");
  EXPECT_EQ(doc["b"], "true");
  EXPECT_EQ(doc["c"], "15");
  EXPECT_EQ(doc["d"], "line\n");
  EXPECT_EQ(doc["e"], "null");
}

TEST(YamlJsonTest, KeepsKeyOrderAndDropsEmptyDocuments) {
  absl::StatusOr<std::vector<Json>> docs =
      ParseYamlDocuments("---\nz: 1\na: 2\n---\n---\nb: [1, {c: d}]\n", "in.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0].dump(), R"({"z":1,"a":2})");
  EXPECT_EQ((*docs)[1].dump(), R"({"b":[1,{"c":"d"}]})");
}

TEST(YamlJsonTest, RefusesASyntaxErrorNamingTheLine) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments("a: 1\nb: [\n", "in.yaml");
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(docs.status().message(), "in.yaml:3: end of sequence flow not found");
}

TEST(YamlJsonTest, RefusesANonScalarKey) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments("? [a]\n: 1\n", "in.yaml");
  EXPECT_EQ(docs.status().message(), "in.yaml:1: a mapping key is not a scalar");
}

TEST(YamlJsonTest, RefusesInvalidUtf8AndControlCharacters) {
  for (const char* text : {"a: \"\xff\xfe\"\n", "a: \xc0\xaf\n", "a: \xed\xa0\x80\n",
                           "a: \xf4\x90\x80\x80\n", "a: x\xe2\x82\n", "\xff: 1\n"}) {
    absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
    EXPECT_EQ(docs.status().message(), "in.yaml: not UTF-8") << text;
  }
  EXPECT_EQ(ParseYamlDocuments("a: 1\nb: x\x01y\n", "in.yaml").status().message(),
            "in.yaml:2: control character 0x01 (YAML allows only printable characters)");
  EXPECT_EQ(
      ParseYamlDocuments("!Y-,L\nA\x01\x86\x9e\xa3U-F\n-\n\n", "in.yaml").status().code(),
      absl::StatusCode::kInvalidArgument);  // made yaml-cpp's LoadAll run away
  // An escape in a double-quoted scalar can still name an invalid code point.
  EXPECT_EQ(ParseYamlDocuments("a: \"\\ud800\"\n", "in.yaml").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseYamlDocuments("a: caf\xc3\xa9 \xf0\x9f\x98\x80\n", "in.yaml").ok());
}

TEST(YamlJsonTest, RefusesDeepNesting) {
  std::string text = std::string(100, '[') + std::string(100, ']');
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
  EXPECT_EQ(docs.status().message(), "in.yaml:1: nests deeper than 64 levels");
}

TEST(YamlJsonTest, RefusesAnAliasBomb) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'h'; ++c) {
    text += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) text += std::string(i ? ", *" : "*") + prev;
    text += "]\n";
    prev = c;
  }
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      docs.status().message(),
      testing::HasSubstr("aliases expand the stream to more than twice its size"));
}

// Few nodes, many bytes: one long scalar named a thousand times (found by
// fuzz_kube_inject_yaml, whose memory grew past 1 GB on such inputs).
TEST(YamlJsonTest, RefusesAnAliasRepeatingALongScalar) {
  std::string text = "a: &a " + std::string(8192, 'x') + "\nb: [*a";
  for (int i = 0; i < 1000; ++i) text += ", *a";
  text += "]\n";
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
  EXPECT_EQ(docs.status().message(),
            "in.yaml:2: aliases expand the stream to more than twice its size");
}

// yaml-cpp 0.7's LoadAll makes empty documents without end from these (the first from
// fuzz_kube_inject_yaml, the second from jbeder/yaml-cpp#1319); the event budget stops
// the parser.
TEST(YamlJsonTest, RefusesStreamsOnWhichYamlCppLoopsForever) {
  for (const char* text : {"!Y-,-Y--\n\n", "\n,\n    "}) {
    absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text, "in.yaml");
    EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(YamlJsonTest, RefusesAnAliasInsideTheNodeItNames) {
  absl::StatusOr<std::vector<Json>> docs =
      ParseYamlDocuments("a: &a [x, *a]\n", "in.yaml");
  EXPECT_EQ(docs.status().message(), "in.yaml:1: an alias names a node that contains it");
}

TEST(YamlJsonTest, AnchorsAreScopedToTheirDocument) {
  absl::StatusOr<std::vector<Json>> docs =
      ParseYamlDocuments("a: &x 1\n---\nb: &x 2\nc: *x\n", "in.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ(DumpJson(docs->at(1)), R"({"b":2,"c":2})");
}

TEST(YamlJsonTest, ReadsAnAliasThatStaysSmall) {
  absl::StatusOr<std::vector<Json>> docs =
      ParseYamlDocuments("a: &a {k: v}\nb: *a\nc: *a\n", "in.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(DumpJson(docs->at(0)), R"({"a":{"k":"v"},"b":{"k":"v"},"c":{"k":"v"}})");
}

TEST(YamlJsonTest, EmitsStringsThatLookLikeOtherTypesQuoted) {
  Json doc = Json::parse(
      R"({"port":"15090","on":"true","none":"null","n":15090,"b":false,"s":"plain",)"
      R"("multi":"a\nb\n","empty":"","f":0.5,"z":null,"list":[],"map":{}})");
  absl::StatusOr<std::string> text = EmitYamlDocument(doc);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(
      *text,
      "port: \"15090\"\non: \"true\"\nnone: \"null\"\nn: 15090\nb: false\ns: plain\n"
      "multi: |\n  a\n  b\n\nempty: \"\"\nf: 0.5\nz: ~\nlist: []\nmap: {}\n");
  absl::StatusOr<std::vector<Json>> back = ParseYamlDocuments(*text, "out.yaml");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)[0], doc);
}

TEST(YamlJsonTest, EveryStringReadsBackAsItself) {
  const std::string kStrings[] = {
      "a\nb",        "a\nb\n\n",   "\nlead", " lead\nx\n", "trail \nx\n", "tab\tx\n",
      "- item",      "key: value", "#hash",  "*alias",     "&anchor",     "!tag",
      "'single'",    "\"double\"", "{flow}", "[flow]",     "0x1F",        "0o17",
      "1e3",         ".5",         "+1",     "~",          "NULL",        "True",
      "yes",         "trail ",     " lead",  "",           "a\rb",        "\x01ctl",
      "caf\xc3\xa9", "%directive", "@at",    "`tick",      "a #b",        "?q",
      "\r",          "x\r",        "\x7f",   "\x1b[0m",
  };
  for (const std::string& s : kStrings) {
    Json doc = {{"s", s}, {s, 1}};
    absl::StatusOr<std::string> text = EmitYamlDocument(doc);
    ASSERT_TRUE(text.ok()) << text.status();
    absl::StatusOr<std::vector<Json>> back = ParseYamlDocuments(*text, "out.yaml");
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << *text;
    ASSERT_EQ(back->size(), 1u) << *text;
    EXPECT_EQ((*back)[0], doc) << *text;
  }
}

TEST(YamlJsonTest, ParseJsonRefusesNonJsonAndDeepNesting) {
  EXPECT_EQ(ParseJson("{").status().message(), "is not JSON");
  EXPECT_EQ(ParseJson(std::string(70, '[') + std::string(70, ']')).status().message(),
            "nests deeper than 64 levels");
  EXPECT_TRUE(ParseJson(R"({"a":[1,2]})").ok());
}

}  // namespace
}  // namespace tandem::injection
