#ifndef TANDEM_TESTS_INTEGRATION_TEMP_DIR_H_
#define TANDEM_TESTS_INTEGRATION_TEMP_DIR_H_

#include <string>

namespace tandem::testing {

// A fresh owner-only directory /tmp/<prefix>-XXXXXX for one test, removed with all it
// holds when the object goes. Declare it before the members that use its path, so it
// outlives them. Aborts the test binary if /tmp is unusable: no test could run.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_TEMP_DIR_H_
