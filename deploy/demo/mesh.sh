#!/usr/bin/env bash
# The local mesh demo (./dev demo): a CA pod and two meshed pods in network namespaces,
# a plain client app in pod "a" talking to a plain echo server in pod "b" through
# tandem, certificates rotating live, and a status view refreshed every 2 s. A
# Prometheus in pod "plain" scrapes the mesh with deploy/observability/alerts.yaml
# loaded; the view shows the traffic between the two identities as it sees it.
#   deploy/demo/mesh.sh BUILD_DIR        (DEMO_SECONDS=60 by default; 0 = until Ctrl-C)
# Not root: runs the same processes on loopback only, and says so.
set -euo pipefail
TANDEM_BUILD="$(cd "${1:?usage: mesh.sh BUILD_DIR}" && pwd)"
export TANDEM_BUILD
DEMO_SECONDS="${DEMO_SECONDS:-60}"
CERT_TTL="${CERT_TTL:-20s}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [[ $(id -u) -ne 0 ]] || ! ip netns add "tandem-probe-$$" 2>/dev/null; then
  echo "== not root (or no network namespaces): loopback-only mode =="
  echo "   the mesh below runs on 127.0.0.1 with fixed destinations instead of iptables."
  exec "$HERE/loopback-demo.sh" "$TANDEM_BUILD"
fi
ip netns del "tandem-probe-$$"

source "$HERE/netns-lib.sh"
trap mesh_down EXIT INT TERM

echo "== building the cluster: bridge namespace + pods ca, a, b, plain (10.77.0.0/24)"
mesh_up
echo "== CA up in pod ca (${POD_IP[ca]}:15012); certificates live $CERT_TTL"
# Prometheus scrapes the agents from pod plain: they serve /metrics beyond loopback.
command -v prometheus >/dev/null && export AGENT_METRICS=0.0.0.0:15019
start_pod b shop server STRICT
start_echo_app b 8080
start_pod a shop client STRICT
echo "== pods a (spiffe://cluster.local/ns/shop/sa/client) and b (.../sa/server) ready"

# A plain app in pod a: one request every 0.5 s to pod b's plain echo server. It knows
# nothing about TLS; iptables hands its connection to tandem.
spawn a "$MESH_DIR/client-app.log" bash -c \
  "for i in \$(seq 1 100000); do echo \"order \$i\" | timeout 3 socat -t 1 - TCP:${POD_IP[b]}:8080 || echo FAIL; sleep 0.5; done"

if [[ -n "${AGENT_METRICS:-}" ]]; then
  start_prometheus "$HERE/../observability/alerts.yaml"
  echo "== Prometheus up in pod plain ($PROM_URL there), scraping every second"
fi

# A packet capture on pod b's wire, to show what an eavesdropper sees.
spawn b "$MESH_DIR/wire.pcap.log" timeout 100000 tcpdump -i eth0 -U -w "$MESH_DIR/wire.pcap" tcp port 8080

row() { printf '  %-6s %-42s %-12s %-9s %-9s %-8s %-8s\n' "$@"; }
status() {
  clear 2>/dev/null || true
  echo "tandem mesh demo — $(date -u +%T) UTC — pods in network namespaces t$MESH_ID-*"
  echo
  row pod "identity (SPIFFE)" serial expires rotated "conns" refused
  for pod in a b; do
    local certs id serial exp rot opened refused
    certs="$(in_ns $pod curl -sf http://127.0.0.1:15000/certs || true)"
    id="$(grep -o '"spiffe_id": "[^"]*"' <<<"$certs" | cut -d'"' -f4)"
    serial="$(grep -o '"serial": "[^"]*"' <<<"$certs" | cut -d'"' -f4 | cut -c1-10)"
    exp="$(grep -o '"not_after": [0-9]*' <<<"$certs" | awk '{print $2}')"
    [[ -n "$exp" ]] && exp="in $((exp - $(date +%s)))s"
    rot="$(metric $pod 15090 'tandem_proxy_secret_updates_total{result="accepted"}')"
    if [[ $pod == a ]]; then
      opened="$(metric $pod 15090 'tandem_proxy_connections_opened_total{direction="outbound",mode="mtls"}')"
      refused="$(in_ns $pod curl -sf http://127.0.0.1:15090/metrics | awk '/^tandem_proxy_handshake_failures_total\{direction="outbound"/ {s+=$2} END {print s+0}')"
    else
      opened="$(metric $pod 15090 'tandem_proxy_connections_opened_total{direction="inbound",mode="mtls"}')"
      refused="$(in_ns $pod curl -sf http://127.0.0.1:15090/metrics | awk '/^tandem_proxy_handshake_failures_total\{direction="inbound"/ {s+=$2} END {print s+0}')"
    fi
    row "$pod" "$id" "$serial" "$exp" "${rot:-0}x" "${opened:-0}" "$refused"
  done
  echo
  local ok fail
  ok="$(grep -c '^order' "$MESH_DIR/client-app.log" 2>/dev/null || true)"
  fail="$(grep -c '^FAIL' "$MESH_DIR/client-app.log" 2>/dev/null || true)"
  echo "  app in pod a -> ${POD_IP[b]}:8080 (plaintext to the app):  ${ok:-0} echoed, ${fail:-0} failed"
  if [[ -s "$MESH_DIR/wire.pcap" ]]; then
    local tls plain
    tls="$(in_ns b tcpdump -r "$MESH_DIR/wire.pcap" -x 2>/dev/null | grep -c '1603 0[13]' || true)"
    plain="$(in_ns b tcpdump -r "$MESH_DIR/wire.pcap" -A 2>/dev/null | grep -c 'order ' || true)"
    echo "  on the wire (pod b eth0, tcp/8080): ${tls:-0} TLS handshake records, ${plain:-0} packets with readable app data"
  fi
  echo
  echo "  CA: $(metric ca 15014 tandem_ca_certificates_issued_total) certificates issued"
  if [[ -n "${AGENT_METRICS:-}" ]]; then telemetry; fi
}

# What Prometheus sees: connections and bytes between workloads over the last 10 s
# (Istio's TCP metrics, as pod b's proxy reports them) and the alerts firing.
telemetry() {
  local by="source_workload_namespace, source_workload, destination_workload_namespace,"
  by+=" destination_workload, connection_security_policy" sel='{reporter="destination"}[10s]'
  echo
  echo "  Prometheus (pod plain), last 10 s:"
  python3 - "$(prom_query "sum by ($by) (rate(istio_tcp_connections_opened_total$sel))")" \
    "$(prom_query "sum by ($by) (rate(istio_tcp_sent_bytes_total$sel))")" \
    "$(prom_query "sum by ($by) (rate(istio_tcp_received_bytes_total$sel))")" \
    "$(prom_query 'ALERTS{alertstate="firing"}')" <<'PY' || true
import json, sys
def series(answer):
    try:
        return json.loads(answer)["data"]["result"]
    except (ValueError, KeyError):
        return []
def key(m):
    return (f'{m.get("source_workload_namespace", "?")}/{m.get("source_workload", "?")} -> '
            f'{m.get("destination_workload_namespace", "?")}/{m.get("destination_workload", "?")} '
            f'({m.get("connection_security_policy", "?")})')
rows = {}
for column, answer in enumerate(sys.argv[1:4]):
    for s in series(answer):
        rows.setdefault(key(s["metric"]), [0.0, 0.0, 0.0])[column] = float(s["value"][1])
for pair, (conns, sent, received) in sorted(rows.items()):
    print(f"    {pair}: {conns:.1f} conn/s, {sent:.0f} B/s sent, {received:.0f} B/s received")
if not rows:
    print("    no traffic scraped yet")
firing = sorted({s["metric"]["alertname"] for s in series(sys.argv[4])})
print(f"    alerts firing: {', '.join(firing) or 'none'}")
PY
}

end=$((SECONDS + DEMO_SECONDS))
while ((DEMO_SECONDS == 0 || SECONDS < end)); do
  status
  sleep 2
done
status
echo
echo "== demo done; cleaning up (KEEP_MESH_DIR=1 keeps $MESH_DIR)"
