#!/usr/bin/env bash
# Fails if any tandem binary exports a BoringSSL/OpenSSL-looking symbol, or imports
# one from OpenSSL 3. gRPC loads
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
  # Our own code must never bind to OpenSSL 3 (gRPC's): every crypto symbol the
  # binary itself imports would be one resolved to the wrong library.
  imported="$(nm -D --undefined-only "$bin" | grep '@OPENSSL_' || true)"
  if [[ -n "$imported" ]]; then
    echo "FAIL: $bin imports $(wc -l <<<"$imported") OpenSSL symbols, e.g.:"
    head -5 <<<"$imported"
    status=1
  else
    echo "ok: $bin imports no OpenSSL symbols"
  fi
done
exit $status
