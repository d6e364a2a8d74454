#!/usr/bin/env bash
# The Kubernetes install's root (deploy/kubernetes/root/make-root.sh) is one tandem-ca
# accepts: the CA starts on it in --root-dir-mode=secret-volume with the files as a
# Secret volume holds them (mode 0400), and make-root.sh refuses what it should.
#   deploy_root_test.sh TANDEM_CA_BINARY
set -uo pipefail
CA_BIN="$1"
MAKE_ROOT="$(dirname "$0")/../deploy/kubernetes/root/make-root.sh"
DIR="$(mktemp -d)"
ca_pid=""
cleanup() {
  [[ -n "$ca_pid" ]] && kill "$ca_pid" 2>/dev/null && wait "$ca_pid" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
failed=0
check() {  # check "what" command...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; failed=$((failed + 1)); fi
}

mkdir "$DIR/root"
cp "$MAKE_ROOT" "$DIR/root/"
check "make-root.sh makes a root" "$DIR/root/make-root.sh" --trust-domain=example.org
check "the key is P-256" grep -q "ASN1 OID: prime256v1" \
  <(openssl pkey -in "$DIR/root/ca-key.pem" -noout -text 2>&1)
check "the root names the trust domain" grep -q "URI:spiffe://example.org" \
  <(openssl x509 -in "$DIR/root/ca-cert.pem" -noout -ext subjectAltName)

"$DIR/root/make-root.sh" >"$DIR/again.out" 2>&1; rc=$?
check "a second run refuses to replace the key (exit 1)" test "$rc" -eq 1
check "the refusal says what to do" grep -q "ca-key.pem exists: remove it first" "$DIR/again.out"
"$DIR/root/make-root.sh" --days >"$DIR/usage.out" 2>&1; rc=$?
check "an unknown flag is refused with the usage (exit 2)" test "$rc" -eq 2
check "the usage names the flags" grep -q "usage: .*--trust-domain=" "$DIR/usage.out"

chmod 0400 "$DIR/root/ca-key.pem" "$DIR/root/ca-cert.pem"
"$CA_BIN" serve --root-dir="$DIR/root" --root-dir-mode=secret-volume \
  --trust-domain=example.org --listen=127.0.0.1:0 --metrics= >"$DIR/ca.log" 2>&1 &
ca_pid=$!
# Started: the log line comes after the root is loaded; an exit is a refusal.
started=false
for _ in $(seq 1 200); do
  if grep -q "serving IstioCertificateService" "$DIR/ca.log"; then started=true; break; fi
  kill -0 "$ca_pid" 2>/dev/null || break
  sleep 0.1
done
check "tandem-ca serves on that root in secret-volume mode" $started
if ! $started; then echo "--- tandem-ca log:"; cat "$DIR/ca.log"; fi

echo "$failed failed"
((failed == 0))
