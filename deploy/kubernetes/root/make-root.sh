#!/usr/bin/env bash
# Makes the mesh's root CA for `kubectl apply -k deploy/kubernetes`: ca-key.pem (P-256,
# mode 0600) and ca-cert.pem (self-signed, the extensions tandem-ca gives its own roots)
# in this folder, which git ignores. Refuses to replace an existing key: a new root
# breaks every workload certificate issued under the old one.
#
#   deploy/kubernetes/root/make-root.sh [--trust-domain=cluster.local] [--days=365]
set -euo pipefail
cd "$(dirname "$0")"
trust_domain=cluster.local days=365
for arg in "$@"; do
  case "$arg" in
    --trust-domain=?*) trust_domain="${arg#*=}" ;;
    --days=?*) days="${arg#*=}" ;;
    *) echo "usage: $0 [--trust-domain=cluster.local] [--days=365]" >&2; exit 2 ;;
  esac
done
if [[ -e ca-key.pem ]]; then
  echo "$PWD/ca-key.pem exists: remove it first to replace the mesh's root" >&2
  exit 1
fi
umask 077
if ! out=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
  -keyout ca-key.pem -out ca-cert.pem -days "$days" \
  -subj "/O=tandem/CN=tandem root CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -addext "subjectKeyIdentifier=hash" \
  -addext "authorityKeyIdentifier=keyid:always" \
  -addext "subjectAltName=URI:spiffe://$trust_domain" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "root CA: $PWD/ca-cert.pem ($(openssl x509 -in ca-cert.pem -noout -fingerprint -sha256))"
