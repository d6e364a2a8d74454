#!/usr/bin/env bash
# Dual-stack end-to-end in network namespaces: every pod has an IPv4 and an IPv6
# address (fd77:77::/64, a ULA prefix of our own), the real iptables script installs
# the ip6tables capture, an app in pod a talks to pod b's IPv6 address through the
# proxies, and a packet capture on pod b's wire shows only TLS. IPv4 keeps working in
# the same namespaces. Exit 77 (skipped) when not root or without IPv6.
#   tests/e2e/mesh_ipv6_e2e_test.sh BUILD_DIR
set -uo pipefail
started=$SECONDS
if [[ $(id -u) -ne 0 ]] || ! ip netns add "tandem-probe-$$" 2>/dev/null; then
  echo "SKIP: needs root and network namespaces"
  exit 77
fi
has_v6() {
  ip netns exec "tandem-probe-$$" test -e /proc/net/if_inet6 &&
    ip netns exec "tandem-probe-$$" ip6tables -t nat -S >/dev/null 2>&1
}
if ! has_v6; then
  ip netns del "tandem-probe-$$"
  echo "SKIP: no IPv6 or no usable ip6tables in a network namespace"
  exit 77
fi
ip netns del "tandem-probe-$$"
for tool in socat tcpdump setpriv curl; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
TANDEM_BUILD="$(cd "${1:?BUILD_DIR}" && pwd)" || exit 1
export TANDEM_BUILD
export MESH_IPV6=1
source "$(dirname "$0")/../../deploy/demo/netns-lib.sh"

print_logs() {
  echo "--- logs"
  tail -n 30 "$MESH_DIR"/*/proxy.log "$MESH_DIR"/*/agent.log "$MESH_DIR"/*/iptables.log
  for pod in a b; do
    echo "--- pod $pod: addresses and ip6tables nat"
    in_ns $pod ip -6 addr show dev eth0
    in_ns $pod ip6tables-save -t nat 2>/dev/null | grep TANDEM
  done
}
finish() {
  local rc=$?
  ((rc == 0)) || print_logs
  mesh_down
  echo "duration: $((SECONDS - started)) s"
  exit $rc
}
trap finish EXIT

failures=0
check() {  # check "what" CONDITION-COMMAND...
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
# An access-log line of POD's proxy (text format) matching the extended regex.
logged() { grep -Eq "$2" "$MESH_DIR/$1/proxy.log"; }
sample_inbound_refused='tandem_proxy_handshake_failures_total{direction="inbound",reason="plaintext_refused"}'
sample_outbound_mtls='tandem_proxy_connections_opened_total{direction="outbound",mode="mtls"}'

mesh_up || exit 1
start_pod b shop server STRICT "" ', "access_log": true' || exit 1
start_pod a shop client STRICT "" ', "access_log": true' || exit 1
start_echo_app b 8080 || exit 1
B4="${POD_IP[b]}"
B6="${POD_IP6[b]}"

check "the capture covers IPv6 in both pods" test "$(grep -l "IPv4+IPv6" \
  "$MESH_DIR/a/iptables.log" "$MESH_DIR/b/iptables.log" | wc -l)" -eq 2
check "meshed app-to-app request over IPv6 is answered" \
  test "$(send_from a "$B6" 8080 hello-v6)" == hello-v6
check "pod a's proxy relayed it over mTLS to [$B6]:8080" wait_for 10 logged a \
  "direction=outbound mode=mtls .*destination=\"?\\[$B6\\]:8080"
check "pod b's proxy accepted it over mTLS from the client's identity" wait_for 10 logged b \
  "direction=inbound mode=mtls peer_identity=\"?spiffe://cluster.local/ns/shop/sa/client\"? destination=\"?\\[$B6\\]:8080"

# What an eavesdropper on pod b's wire sees of IPv6 traffic. `ip netns exec` execs
# tcpdump in place, so $! is tcpdump itself (in_ns would put a subshell in between).
# --immediate-mode -U: each packet reaches the file as it is seen, so the file can be
# watched for the connection's end instead of sleeping.
ip netns exec "$(ns b)" tcpdump -i eth0 -n --immediate-mode -U -w "$MESH_DIR/v6.pcap" \
  ip6 and tcp port 8080 2>"$MESH_DIR/tcpdump.log" &
tcpdump_pid=$!
wait_for 10 grep -q "listening on" "$MESH_DIR/tcpdump.log" ||
  { echo "tcpdump did not start:"; cat "$MESH_DIR/tcpdump.log"; exit 1; }
check "payload over IPv6 is delivered under capture" \
  test "$(send_from a "$B6" 8080 TOP-SECRET-V6-PAYLOAD-4711)" == TOP-SECRET-V6-PAYLOAD-4711
# (BPF's tcp[] does not reach past an IPv6 header: read the flags from the text.)
fins() { tcpdump -r "$MESH_DIR/v6.pcap" -n 2>/dev/null | grep -Ec 'Flags \[[^]]*F'; }
wait_for 10 test "$(fins)" -ge 2 || echo "note: the capture did not see both FINs"
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid"
summary="$(tcpdump -r "$MESH_DIR/v6.pcap" -n 2>/dev/null)"
hex="$(tcpdump -r "$MESH_DIR/v6.pcap" -x 2>/dev/null)"
ascii="$(tcpdump -r "$MESH_DIR/v6.pcap" -A 2>/dev/null)"
check "the capture holds IPv6 packets between the pods" \
  grep -q "IP6 ${POD_IP6[a]}\.[0-9]* > $B6\.8080" <<<"$summary"
check "bytes on the wire are TLS (handshake records 0x16 0x03)" grep -q '1603 0[13]' <<<"$hex"
check "the app payload is not visible on the wire" \
  bash -c "! grep -q TOP-SECRET <<<\"\$0\"" "$ascii"

refused_before="$(metric b 15090 "$sample_inbound_refused")"
check "STRICT refuses a plaintext IPv6 client without a sidecar" \
  test -z "$(send_from plain "$B6" 8080 plain-hello)"
check "the refusal is counted as plaintext_refused" \
  test "$(metric b 15090 "$sample_inbound_refused")" -ge $((refused_before + 1))

# uid 1337 bypasses pod a's capture: the bytes reach pod b in plaintext, where STRICT
# refuses them; pod a's proxy opens no connection.
out_before="$(metric a 15090 "$sample_outbound_mtls")"
refused_before="$(metric b 15090 "$sample_inbound_refused")"
check "the proxy's own uid is not captured over IPv6" test -z "$(in_ns a timeout 5 \
  "${AS_PROXY[@]}" socat -t 2 - "$(tcp_address "$B6" 8080),connect-timeout=3" <<<x 2>/dev/null)"
check "pod a's proxy did not see the uid-1337 connection" \
  test "$(metric a 15090 "$sample_outbound_mtls")" == "$out_before"
check "pod b refused it as plaintext" \
  test "$(metric b 15090 "$sample_inbound_refused")" -ge $((refused_before + 1))

# IPv4 in the same dual-stack pods: the same [::] listeners take it, and the original
# destination reads as plain IPv4.
check "meshed app-to-app request over IPv4 is answered" \
  test "$(send_from a "$B4" 8080 hello-v4)" == hello-v4
check "pod b's proxy accepted the IPv4 one over mTLS at $B4:8080" wait_for 10 logged b \
  "direction=inbound mode=mtls peer_identity=\"?spiffe://cluster.local/ns/shop/sa/client\"? destination=\"?$B4:8080"
check "STRICT refuses a plaintext IPv4 client without a sidecar" \
  test -z "$(send_from plain "$B4" 8080 plain-hello)"

# Both families interleaved, bounded: 20 requests, none may fail.
lost=0
for i in $(seq 1 20); do
  ip="$B4"; ((i % 2)) && ip="$B6"
  [[ "$(send_from a "$ip" 8080 "req-$i")" == "req-$i" ]] || lost=$((lost + 1))
done
check "no request lost across 20 interleaved IPv4/IPv6 requests" test "$lost" -eq 0

if ((failures)); then
  echo "$failures IPv6 e2e checks failed"
  exit 1
fi
echo "all IPv6 e2e checks passed"
