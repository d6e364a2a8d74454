#ifndef TANDEM_COMMON_VERSION_H_
#define TANDEM_COMMON_VERSION_H_

namespace tandem {

// Returns the project's version ("0.1.0"), set by project() in the top CMakeLists.txt.
// The agent and the proxy report it to tandem-ca (`tandemctl proxy-status`). Any thread.
const char* Version();

}  // namespace tandem

#endif  // TANDEM_COMMON_VERSION_H_
