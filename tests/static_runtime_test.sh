#!/usr/bin/env bash
# Fails if a binary built with the static runtime (the release tandem-proxy) depends on
# any shared library but the C library's own: a stray shared gRPC, protobuf, Abseil,
# OpenSSL or libstdc++ would bring back the resident memory the static link removes
# (see tandem_link in CMakeLists.txt).
set -euo pipefail
status=0
for bin in "$@"; do
  needed="$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
  extra="$(grep -vxE 'libc\.so\.6|libm\.so\.6|ld-linux-x86-64\.so\.2' <<<"$needed" || true)"
  if [[ -n "$extra" ]]; then
    echo "FAIL: $bin needs shared libraries beyond libc:" $extra
    status=1
  else
    echo "ok: $bin needs only" $needed
  fi
done
exit $status
