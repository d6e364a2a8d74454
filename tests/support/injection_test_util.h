#ifndef TANDEM_TESTS_SUPPORT_INJECTION_TEST_UTIL_H_
#define TANDEM_TESTS_SUPPORT_INJECTION_TEST_UTIL_H_

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "controlplane/injection/injector.h"
#include "controlplane/injection/yaml_json.h"
#include "gtest/gtest.h"

namespace tandem::injection::testing {

inline std::string ReadTestFile(const std::string& relative) {
  std::ifstream in(std::string(TANDEM_SOURCE_DIR) + "/" + relative, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

inline constexpr char kTemplatePath[] =
    "deploy/kubernetes/injection/sidecar-template.yaml";

// The injector over the shipped template, as tandem-ca and tandemctl build it.
inline std::unique_ptr<Injector> ShippedInjector() {
  InjectorOptions options;
  options.template_yaml = ReadTestFile(kTemplatePath);
  absl::StatusOr<std::unique_ptr<Injector>> injector =
      Injector::Create(std::move(options));
  EXPECT_TRUE(injector.ok()) << injector.status();
  return injector.ok() ? *std::move(injector) : nullptr;
}

// Parses one YAML document (test fixtures are written as YAML for readability).
inline Json Yaml(const std::string& text) {
  absl::StatusOr<std::vector<Json>> documents = ParseYamlDocuments(text, "test");
  EXPECT_TRUE(documents.ok()) << documents.status();
  if (!documents.ok() || documents->size() != 1) return Json();
  return (*documents)[0];
}

// Finds the container or init container named `name`, or null.
inline const Json* ContainerNamed(const Json& pod, const std::string& list,
                                  const std::string& name) {
  const Json& spec = pod["spec"];
  if (!spec.contains(list)) return nullptr;
  for (const Json& c : spec[list]) {
    if (c.value("name", "") == name) return &c;
  }
  return nullptr;
}

// The value of env var `name` in `container`, or "" when absent.
inline std::string EnvValue(const Json& container, const std::string& name) {
  if (!container.contains("env")) return "";
  for (const Json& e : container["env"]) {
    if (e.value("name", "") == name) return e.value("value", "");
  }
  return "";
}

}  // namespace tandem::injection::testing

#endif  // TANDEM_TESTS_SUPPORT_INJECTION_TEST_UTIL_H_
