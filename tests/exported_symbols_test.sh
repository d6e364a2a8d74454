#!/usr/bin/env bash
# Fails if any tandem binary exports a BoringSSL/OpenSSL-looking symbol. gRPC loads
# OpenSSL 3 in the same process; an exported SSL_/EVP_/X509_/CRYPTO_ symbol from our
# static BoringSSL could capture OpenSSL's calls and crash the process.
set -euo pipefail
status=0
for bin in "$@"; do
  if [[ ! -x "$bin" ]]; then
    echo "FAIL: $bin is missing"; status=1; continue
  fi
  leaked="$(nm -D --defined-only "$bin" | awk '{print $3}' |
            grep -E '^(SSL|EVP|X509|CRYPTO|BIO|EC|ECDSA|RSA|BN|ERR|PEM|ASN1|OPENSSL|RAND|HMAC|SHA[0-9]*|AES|TLS|DTLS|d2i|i2d)_' || true)"
  if [[ -n "$leaked" ]]; then
    echo "FAIL: $bin exports $(wc -l <<<"$leaked") crypto symbols, e.g.:"
    head -5 <<<"$leaked"
    status=1
  else
    echo "ok: $bin exports no crypto symbols"
  fi
  # And it really does carry BoringSSL (hidden) next to gRPC's OpenSSL.
  if ! ldd "$bin" | grep -q 'libssl.so.3\|libgrpc'; then
    echo "note: $bin does not link gRPC"
  fi
done
exit $status
