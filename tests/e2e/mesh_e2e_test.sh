#!/usr/bin/env bash
# End-to-end in network namespaces: real iptables capture, real processes, a packet
# capture on the wire. Exit 77 (skipped) when not root.
#   tests/e2e/mesh_e2e_test.sh BUILD_DIR
set -uo pipefail
if [[ $(id -u) -ne 0 ]] || ! ip netns add "tandem-probe-$$" 2>/dev/null; then
  echo "SKIP: needs root and network namespaces"
  exit 77
fi
ip netns del "tandem-probe-$$"
for tool in socat tcpdump setpriv curl; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
TANDEM_BUILD="$(cd "${1:?BUILD_DIR}" && pwd)" || exit 1
export TANDEM_BUILD
export CERT_TTL=4s
source "$(dirname "$0")/../../deploy/demo/netns-lib.sh"
trap mesh_down EXIT

failures=0
check() {  # check "what" CONDITION-COMMAND...
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}

mesh_up || exit 1
# Pod b: STRICT by default, port 8081 PERMISSIVE, port 9090 excluded from capture; its
# agent serves the app probes the injector would have moved off the app's ports.
APP_PROBES='{"/app-health/web/readyz": {"httpGet": {"path": "/", "port": 8082}},
  "/app-health/web/livez": {"httpGet": {"path": "/missing", "port": 8082}},
  "/app-health/echo/livez": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2}}' \
  start_pod b shop server STRICT 9090 \
  ', "inbound_ports": [{"port": 8081, "mode": "PERMISSIVE"}]' || exit 1
start_pod a shop client STRICT || exit 1
start_echo_app b 8080
start_echo_app b 8081
start_echo_app b 9090
B="${POD_IP[b]}"

check "meshed app-to-app request is answered" \
  test "$(send_from a "$B" 8080 hello-mesh)" == hello-mesh

# What an eavesdropper on pod b's wire sees. tcpdump says "listening on eth0" once it
# captures; the capture holds the whole exchange once it holds the connection's first
# FIN or RST (packets are written in order as they come, -U).
in_ns b timeout 60 tcpdump -i eth0 -U -w "$MESH_DIR/e2e.pcap" tcp port 8080 \
  2>"$MESH_DIR/tcpdump.log" &
tcpdump_pid=$!
wait_for 20 grep -q "listening on" "$MESH_DIR/tcpdump.log" ||
  echo "tcpdump did not start: $(cat "$MESH_DIR/tcpdump.log")"
check "payload is delivered under capture" \
  test "$(send_from a "$B" 8080 TOP-SECRET-PAYLOAD-4711)" == TOP-SECRET-PAYLOAD-4711
captured_end() {
  in_ns b tcpdump -r "$MESH_DIR/e2e.pcap" 'tcp[tcpflags] & (tcp-fin|tcp-rst) != 0' \
    2>/dev/null | grep -q .
}
wait_for 20 captured_end || echo "the capture never saw the connection end"
kill "$tcpdump_pid" 2>/dev/null
wait "$tcpdump_pid" 2>/dev/null
hex="$(in_ns b tcpdump -r "$MESH_DIR/e2e.pcap" -x 2>/dev/null)"
ascii="$(in_ns b tcpdump -r "$MESH_DIR/e2e.pcap" -A 2>/dev/null)"
check "the capture holds packets" test -n "$hex"
check "bytes on the wire are TLS (handshake records 0x16 0x03)" grep -q '1603 0[13]' <<<"$hex"
check "the app payload is not visible on the wire" bash -c "! grep -q TOP-SECRET <<<\"\$0\"" "$ascii"

check "STRICT refuses a plaintext client without a sidecar" \
  test -z "$(send_from plain "$B" 8080 plain-hello)"
check "the refusal is counted as plaintext_refused" test "$(metric b 15090 \
  'tandem_proxy_handshake_failures_total{direction="inbound",reason="plaintext_refused"}')" -ge 1
check "PERMISSIVE accepts the plaintext client" \
  test "$(send_from plain "$B" 8081 plain-ok)" == plain-ok
before="$(metric b 15090 'tandem_proxy_connections_opened_total{direction="inbound",mode="plaintext"}')"
check "an excluded port bypasses the proxy" \
  test "$(send_from plain "$B" 9090 direct)" == direct
after="$(metric b 15090 'tandem_proxy_connections_opened_total{direction="inbound",mode="plaintext"}')"
check "the proxy did not see the excluded-port connection" test "$before" == "$after"
# Issue #14: the kubelet's plaintext probe of an app port meets STRICT and is refused;
# the rewritten probe on the agent's 15020 reaches the app over loopback as uid 1337.
mkdir -p "$MESH_DIR/www" && echo ready >"$MESH_DIR/www/index.html"
spawn b "$MESH_DIR/b-app-8082.log" python3 -m http.server 8082 --directory "$MESH_DIR/www"
wait_for 10 in_ns b bash -c "ss -ltn | grep -q ':8082 '"
probe() {  # probe PORT PATH: the HTTP status the "kubelet" (pod plain) gets, 000 if none
  in_ns plain curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$B:$1$2" || true
}
check "STRICT refuses the kubelet's probe of the app port" test "$(probe 8082 /)" == 000
check "app-health answers the rewritten readiness probe (httpGet)" \
  test "$(probe 15020 /app-health/web/readyz)" == 200
check "app-health answers the rewritten liveness probe (tcpSocket)" \
  test "$(probe 15020 /app-health/echo/livez)" == 200
check "app-health fails a probe the app fails (HTTP 404 -> 503)" \
  test "$(probe 15020 /app-health/web/livez)" == 503
check "app-health answers 404 for a probe the pod does not have" \
  test "$(probe 15020 /app-health/web/startupz)" == 404
check "the agent counted the app probes" test "$(metric b 15019 \
  'tandem_agent_app_probe_total{container="web",probe="readyz",result="success"}')" -ge 1
check "the proxy's own uid is not captured (plaintext from uid 1337 meets STRICT)" \
  test -z "$(in_ns a timeout 5 "${AS_PROXY[@]}" socat -t 2 - "TCP:$B:8080,connect-timeout=3" <<<x 2>/dev/null)"

# Rotation under traffic: 4 s certificates, 12 s of requests, none may fail.
rot_before="$(metric a 15090 'tandem_proxy_secret_updates_total{result="accepted"}')"
lost=0
for i in $(seq 1 60); do
  [[ "$(send_from a "$B" 8080 "req-$i")" == "req-$i" ]] || lost=$((lost + 1))
  sleep 0.2
done
rot_after="$(metric a 15090 'tandem_proxy_secret_updates_total{result="accepted"}')"
echo "rotations during traffic: $((rot_after - rot_before)), requests lost: $lost"
check "no request lost while certificates rotated" test "$lost" -eq 0
check "certificates rotated during the traffic" test $((rot_after - rot_before)) -ge 2

if ((failures)); then
  echo "--- logs"; tail -n 100 "$MESH_DIR"/ca.log "$MESH_DIR"/*/proxy.log "$MESH_DIR"/*/agent.log
  echo "$failures e2e checks failed"
  exit 1
fi
echo "all e2e checks passed"
