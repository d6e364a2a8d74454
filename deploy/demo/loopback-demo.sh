#!/usr/bin/env bash
# The mesh demo without root: the same processes on 127.0.0.1. No iptables, so the
# client proxy's destination is fixed in its config and the apps use proxy ports.
set -euo pipefail
B="$(cd "${1:?usage: loopback-demo.sh BUILD_DIR}" && pwd)"
DEMO_SECONDS="${DEMO_SECONDS:-60}"
CERT_TTL="${CERT_TTL:-20s}"
D="$(mktemp -d /tmp/tandem-loopback-XXXXXX)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT INT TERM
bg() { local log="$1"; shift; "$@" >"$log" 2>&1 & pids+=($!); }
wait_http() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; return 1; }

"$B/controlplane/tandem-ca" gen-signing-key --out="$D/key.pem"
"$B/controlplane/tandem-ca" public-key --key="$D/key.pem" >"$D/key.pub"
bg "$D/ca.log" "$B/controlplane/tandem-ca" serve --root-dir="$D/ca" --listen=127.0.0.1:25012 \
  --metrics=127.0.0.1:25014 --token-public-key="$D/key.pub" --default-ttl="$CERT_TTL"
wait_http http://127.0.0.1:25014/healthz/ready
curl -sf http://127.0.0.1:25014/trust-bundle >"$D/root.pem"
bg "$D/app.log" socat TCP-LISTEN:25080,reuseaddr,fork EXEC:cat

pod() {  # pod NAME SA OUT IN METRICS ADMIN AGENT_METRICS ROUTING_JSON
  mkdir -p "$D/$1"
  "$B/controlplane/tandem-ca" mint-token --key="$D/key.pem" --namespace=shop \
    --service-account="$2" >"$D/$1/token"
  bg "$D/$1/agent.log" "$B/agent/tandem-agent" --ca-address=127.0.0.1:25012 \
    --ca-root="$D/root.pem" --token-file="$D/$1/token" --namespace=shop --service-account="$2" \
    --sds-socket="$D/$1/sds/sds.sock" --proxy-uid="$(id -u)" --validity="$CERT_TTL" \
    --metrics="127.0.0.1:$7"
  echo "{\"outbound_address\": \"127.0.0.1:$3\", \"inbound_address\": \"127.0.0.1:$4\",
    \"metrics_address\": \"127.0.0.1:$5\", \"admin_address\": \"127.0.0.1:$6\",
    \"health_address\": \"127.0.0.1:$(($5 + 1))\",
    \"workers\": 1, \"socket_mark\": 0, \"sds_socket\": \"$D/$1/sds/sds.sock\" $8}" >"$D/$1/proxy.json"
  bg "$D/$1/proxy.log" "$B/proxy/tandem-proxy" --config="$D/$1/proxy.json"
  wait_http "http://127.0.0.1:$5/healthz/ready"
}
pod server server 25101 25106 25190 25100 25120 ', "inbound_fixed_app": "127.0.0.1:25080"'
pod client client 25201 25206 25290 25200 25220 ', "outbound_fixed_destination": "127.0.0.1:25106"'
bg "$D/client-app.log" bash -c 'for i in $(seq 1 100000); do echo "order $i" | timeout 3 socat -t 1 - TCP:127.0.0.1:25201 || echo FAIL; sleep 0.5; done'

m() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s {print $2}'; }
end=$((SECONDS + DEMO_SECONDS))
while ((DEMO_SECONDS == 0 || SECONDS < end)); do
  clear 2>/dev/null || true
  echo "tandem mesh demo (loopback mode, not root) — $(date -u +%T) UTC"
  for p in "client 25200 25290" "server 25100 25190"; do
    set -- $p
    echo "  $1: $(curl -sf http://127.0.0.1:$2/certs | tr -d '\n' | cut -c1-110)"
    echo "         rotations $(m $3 'tandem_proxy_secret_updates_total{result="accepted"}')"
  done
  echo "  app: $(grep -c '^order' "$D/client-app.log" || true) echoed, $(grep -c FAIL "$D/client-app.log" || true) failed"
  sleep 2
done
