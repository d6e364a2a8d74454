# Builds BoringSSL from Debian's source package as two static, hidden-visibility
# libraries: tandem::bssl_crypto and tandem::bssl_ssl.
#
# Why not Debian's shared android-libboringssl: its symbols are unversioned, and in a
# process that also loads gRPC (and so OpenSSL 3) glibc binds OpenSSL's references to
# BoringSSL's symbols and the process crashes. Static + hidden + --exclude-libs keeps
# the two apart; tests/exported_symbols_test.sh guards that.

set(TANDEM_BORINGSSL_DIR "" CACHE PATH
    "Unpacked Debian android-platform-external-boringssl source (fetched when empty)")
if(NOT TANDEM_BORINGSSL_DIR)
  execute_process(
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/fetch_boringssl.sh
    OUTPUT_VARIABLE _bssl_dir OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _bssl_rc)
  if(NOT _bssl_rc EQUAL 0)
    message(FATAL_ERROR "Could not fetch BoringSSL source: run scripts/setup.sh as root")
  endif()
  set(TANDEM_BORINGSSL_DIR "${_bssl_dir}" CACHE PATH "" FORCE)
endif()
message(STATUS "BoringSSL source: ${TANDEM_BORINGSSL_DIR}")

set(BORINGSSL_ROOT "${TANDEM_BORINGSSL_DIR}/")
include("${TANDEM_BORINGSSL_DIR}/android-sources.cmake")

if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  message(FATAL_ERROR "tandem builds BoringSSL's x86_64 assembly only")
endif()

enable_language(ASM)
add_library(bssl_crypto STATIC ${crypto_sources} ${crypto_sources_linux_x86_64})
add_library(bssl_ssl STATIC ${ssl_sources})
target_link_libraries(bssl_ssl PUBLIC bssl_crypto)
find_package(Threads REQUIRED)
target_link_libraries(bssl_crypto PUBLIC Threads::Threads)

foreach(lib bssl_crypto bssl_ssl)
  set_target_properties(${lib} PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    C_STANDARD 11 C_EXTENSIONS OFF
    CXX_STANDARD 17 CXX_EXTENSIONS OFF
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_definitions(${lib} PRIVATE BORINGSSL_IMPLEMENTATION _XOPEN_SOURCE=700)
  target_compile_options(${lib} PRIVATE
    -w -fno-common
    $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti>)
  if(TANDEM_SANITIZE STREQUAL "address")
    # BoringSSL is not our code and is fuzzed upstream, so the ASan tree compiles it
    # without ASan/UBSan (8% less CPU for it: 130 s instead of 141 s, clang -O0). Our
    # code's accesses to its memory stay checked, and its allocations still go through
    # ASan's allocator (leaks, double frees). It keeps the fuzzer's coverage
    # instrumentation, so fuzzing still explores its parsers. TSan keeps BoringSSL
    # instrumented: its reference counts are atomics TSan must see.
    target_compile_options(${lib} PRIVATE -fno-sanitize=address,undefined)
  endif()
  # The include dir is attached to the targets, never to global flags, so gRPC code
  # (which includes OpenSSL's headers) can never see BoringSSL's.
  target_include_directories(${lib} SYSTEM PUBLIC "${TANDEM_BORINGSSL_DIR}/include")
endforeach()

add_library(tandem::bssl_crypto ALIAS bssl_crypto)
add_library(tandem::bssl_ssl ALIAS bssl_ssl)
