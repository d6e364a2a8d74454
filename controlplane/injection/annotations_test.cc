#include "controlplane/injection/annotations.h"

#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::injection {
namespace {

absl::StatusOr<InjectionSettings> Parse(const std::string& name, const Json& value) {
  return ParseInjectionAnnotations(Json{{name, value}});
}

TEST(AnnotationsTest, DefaultsWithoutAnnotations) {
  for (const Json& annotations : {Json(), Json::object(), Json{{"other.io/x", "y"}}}) {
    absl::StatusOr<InjectionSettings> s = ParseInjectionAnnotations(annotations);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(s->inject);
    EXPECT_EQ(s->exclude_inbound_ports, "15000,15001,15006,15019,15020,15021,15090");
    EXPECT_EQ(s->include_inbound_ports, "*");
    EXPECT_EQ(s->exclude_outbound_ports, "");
    EXPECT_EQ(s->exclude_outbound_cidrs, "");
    EXPECT_EQ(s->inbound_mode, "");
    EXPECT_EQ(s->proxy_cpu, "10m");
    EXPECT_EQ(s->proxy_memory, "16Mi");
    EXPECT_EQ(s->proxy_cpu_limit, "");
    EXPECT_EQ(s->proxy_memory_limit, "256Mi");
    EXPECT_EQ(s->sidecar_mode, SidecarMode::kNative);
    EXPECT_TRUE(s->rewrite_app_probes);
  }
}

TEST(AnnotationsTest, ReadsEveryAnnotation) {
  absl::StatusOr<InjectionSettings> s = ParseInjectionAnnotations(Json{
      {"sidecar.tandem.dev/inject", "false"},
      {"sidecar.tandem.dev/exclude-inbound-ports", "8081, 9090"},
      {"sidecar.tandem.dev/include-inbound-ports", "80,443"},
      {"sidecar.tandem.dev/exclude-outbound-ports", "5432"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs",
       "10.0.0.0/8, fd00::/8,169.254.169.254"},
      {"sidecar.tandem.dev/inbound-mode", "PERMISSIVE"},
      {"sidecar.tandem.dev/proxy-cpu", "100m"},
      {"sidecar.tandem.dev/proxy-memory", "64Mi"},
      {"sidecar.tandem.dev/proxy-cpu-limit", "1.5"},
      {"sidecar.tandem.dev/proxy-memory-limit", "1Gi"},
      {"sidecar.tandem.dev/sidecar-mode", "classic"},
      {"sidecar.tandem.dev/rewrite-app-probes", "false"},
      {"sidecar.tandem.dev/status", "anything: the injector reads it, not this parser"},
  });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->inject);
  EXPECT_EQ(s->exclude_inbound_ports, "15000,15001,15006,15019,15020,15021,15090,8081,9090");
  EXPECT_EQ(s->include_inbound_ports, "80,443");
  EXPECT_EQ(s->exclude_outbound_ports, "5432");
  EXPECT_EQ(s->exclude_outbound_cidrs, "10.0.0.0/8,fd00::/8,169.254.169.254");
  EXPECT_EQ(s->inbound_mode, "PERMISSIVE");
  EXPECT_EQ(s->proxy_cpu, "100m");
  EXPECT_EQ(s->proxy_memory, "64Mi");
  EXPECT_EQ(s->proxy_cpu_limit, "1.5");
  EXPECT_EQ(s->proxy_memory_limit, "1Gi");
  EXPECT_EQ(s->sidecar_mode, SidecarMode::kClassic);
  EXPECT_FALSE(s->rewrite_app_probes);
}

TEST(AnnotationsTest, AcceptsTheOtherSpellingOfEachChoice) {
  EXPECT_TRUE(Parse("sidecar.tandem.dev/inject", "true")->inject);
  EXPECT_EQ(Parse("sidecar.tandem.dev/include-inbound-ports", "*")->include_inbound_ports,
            "*");
  EXPECT_EQ(Parse("sidecar.tandem.dev/include-inbound-ports", "")->include_inbound_ports,
            "");
  EXPECT_EQ(Parse("sidecar.tandem.dev/inbound-mode", "STRICT")->inbound_mode, "STRICT");
  EXPECT_EQ(Parse("sidecar.tandem.dev/sidecar-mode", "native")->sidecar_mode,
            SidecarMode::kNative);
  EXPECT_EQ(Parse("sidecar.tandem.dev/exclude-inbound-ports", "")->exclude_inbound_ports,
            "15000,15001,15006,15019,15020,15021,15090");
}

struct Refusal {
  std::string name;
  Json value;
  std::string message;
};

TEST(AnnotationsTest, RefusesEveryBadValueNamingAnnotationAndValue) {
  const Refusal kCases[] = {
      {"sidecar.tandem.dev/inject", "no",
       R"(annotation sidecar.tandem.dev/inject: "no": must be "true" or "false")"},
      {"sidecar.tandem.dev/inject", false,
       "annotation sidecar.tandem.dev/inject: false: must be a string (quote it)"},
      {"sidecar.tandem.dev/rewrite-app-probes", "yes",
       R"(annotation sidecar.tandem.dev/rewrite-app-probes: "yes": must be "true" or "false")"},
      {"sidecar.tandem.dev/exclude-inbound-ports", "80,http",
       R"(annotation sidecar.tandem.dev/exclude-inbound-ports: "80,http": "http" is not a port in 1..65535)"},
      {"sidecar.tandem.dev/exclude-inbound-ports", "0",
       R"(annotation sidecar.tandem.dev/exclude-inbound-ports: "0": "0" is not a port in 1..65535)"},
      {"sidecar.tandem.dev/include-inbound-ports", "65536",
       R"(annotation sidecar.tandem.dev/include-inbound-ports: "65536": "65536" is not a port in 1..65535)"},
      {"sidecar.tandem.dev/include-inbound-ports", "80,,443",
       R"(annotation sidecar.tandem.dev/include-inbound-ports: "80,,443": has an empty list element)"},
      {"sidecar.tandem.dev/exclude-outbound-ports", "-1",
       R"(annotation sidecar.tandem.dev/exclude-outbound-ports: "-1": "-1" is not a port in 1..65535)"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs", "10.0.0.0/33",
       R"(annotation sidecar.tandem.dev/exclude-outbound-cidrs: "10.0.0.0/33": "10.0.0.0/33" is not a CIDR)"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs", "example.com",
       R"(annotation sidecar.tandem.dev/exclude-outbound-cidrs: "example.com": "example.com" is not a CIDR)"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs", "fd00::/129",
       R"(annotation sidecar.tandem.dev/exclude-outbound-cidrs: "fd00::/129": "fd00::/129" is not a CIDR)"},
      {"sidecar.tandem.dev/exclude-outbound-cidrs", "10.0.0.0/",
       R"(annotation sidecar.tandem.dev/exclude-outbound-cidrs: "10.0.0.0/": "10.0.0.0/" is not a CIDR)"},
      {"sidecar.tandem.dev/inbound-mode", "strict",
       R"(annotation sidecar.tandem.dev/inbound-mode: "strict": must be STRICT or PERMISSIVE)"},
      {"sidecar.tandem.dev/proxy-cpu", "lots",
       R"(annotation sidecar.tandem.dev/proxy-cpu: "lots": is not a Kubernetes quantity (like 100m or 64Mi))"},
      {"sidecar.tandem.dev/proxy-memory", "-64Mi",
       R"(annotation sidecar.tandem.dev/proxy-memory: "-64Mi": is not a Kubernetes quantity (like 100m or 64Mi))"},
      {"sidecar.tandem.dev/proxy-cpu-limit", "1 core",
       R"(annotation sidecar.tandem.dev/proxy-cpu-limit: "1 core": is not a Kubernetes quantity (like 100m or 64Mi))"},
      {"sidecar.tandem.dev/proxy-memory-limit", "64MB",
       R"(annotation sidecar.tandem.dev/proxy-memory-limit: "64MB": is not a Kubernetes quantity (like 100m or 64Mi))"},
      {"sidecar.tandem.dev/sidecar-mode", "sidecar",
       R"(annotation sidecar.tandem.dev/sidecar-mode: "sidecar": must be native or classic)"},
      {"sidecar.tandem.dev/inject", "tr\nue",
       R"(annotation sidecar.tandem.dev/inject: "tr\nue": must be "true" or "false")"},
  };
  for (const Refusal& c : kCases) {
    absl::StatusOr<InjectionSettings> s = Parse(c.name, c.value);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(s.status().message(), c.message);
  }
}

TEST(AnnotationsTest, RefusesAnUnknownNameUnderThePrefix) {
  absl::StatusOr<InjectionSettings> s = Parse("sidecar.tandem.dev/injct", "false");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      s.status().message().substr(0, 77),
      "unknown annotation sidecar.tandem.dev/injct (known: sidecar.tandem.dev/inject");
}

TEST(AnnotationsTest, RefusesAnnotationsThatAreNotAMapping) {
  EXPECT_EQ(ParseInjectionAnnotations(Json::array()).status().message(),
            "metadata.annotations is not a mapping");
}

TEST(AnnotationsTest, EveryAnnotationIsDocumented) {
  // docs/injection.md's table is the one place users read; each name must be in it.
  std::ifstream in(std::string(TANDEM_SOURCE_DIR) + "/docs/injection.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (absl::string_view name : kAllAnnotations) {
    EXPECT_NE(doc.find(absl::StrCat("`", name, "`")), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace tandem::injection
