// The injector the injection fuzz targets share: the shipped template, loaded once.
#ifndef TANDEM_TESTS_FUZZ_INJECTION_FUZZ_UTIL_H_
#define TANDEM_TESTS_FUZZ_INJECTION_FUZZ_UTIL_H_

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "controlplane/injection/injector.h"

namespace tandem::injection {

inline const Injector& FuzzInjector() {
  static const Injector* injector = [] {
    std::ifstream in(std::string(TANDEM_SOURCE_DIR) +
                     "/deploy/kubernetes/injection/sidecar-template.yaml");
    InjectorOptions options;
    options.template_yaml.assign(std::istreambuf_iterator<char>(in),
                                 std::istreambuf_iterator<char>());
    absl::StatusOr<std::unique_ptr<Injector>> created = Injector::Create(options);
    if (!created.ok()) std::abort();
    return created->release();
  }();
  return *injector;
}

}  // namespace tandem::injection

#endif  // TANDEM_TESTS_FUZZ_INJECTION_FUZZ_UTIL_H_
