#!/usr/bin/env bash
# A real Prometheus scrapes the network-namespace mesh (deploy/demo/netns-lib.sh) while
# traffic flows, loads deploy/observability/alerts.yaml, and must return data for every
# alert expression and every panel of deploy/observability/grafana/tandem-mesh.json
# (tests/observability/query_expressions.py says how alert expressions are checked).
# Prometheus runs in the mesh's "plain" pod (no sidecar, no capture), so its fixed
# listen port is private to that namespace and cannot collide with anything.
# Exit 77 (skipped) when not root or without prometheus.
#   tests/observability/observability_e2e_test.sh BUILD_DIR
set -uo pipefail
if [[ $(id -u) -ne 0 ]] || ! ip netns add "tandem-probe-$$" 2>/dev/null; then
  echo "SKIP: needs root and network namespaces"
  exit 77
fi
ip netns del "tandem-probe-$$"
for tool in socat setpriv curl prometheus python3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml is not installed"; exit 77; }
TANDEM_BUILD="$(cd "${1:?BUILD_DIR}" && pwd)" || exit 1
export TANDEM_BUILD
HERE="$(cd "$(dirname "$0")" && pwd)"
OBS="$HERE/../../deploy/observability"
# Short-lived certificates, so rotations happen while Prometheus watches.
export CERT_TTL=6s
# The agents' /metrics must be reachable from the Prometheus pod.
export AGENT_METRICS=0.0.0.0:15019
source "$HERE/../../deploy/demo/netns-lib.sh"

failed=0
show_logs() {
  echo "--- prometheus.log"; tail -n 60 "$MESH_DIR/prometheus.log"
  echo "--- mesh logs"
  tail -n 40 "$MESH_DIR"/ca.log "$MESH_DIR"/*/proxy.log "$MESH_DIR"/*/agent.log
}
finish() {
  ((failed)) && show_logs
  mesh_down
}
trap finish EXIT
fail() { echo "FAIL: $*"; failed=1; exit 1; }

# The CA serves a mesh policy, so the policy panels and rules have versions to show.
mkdir -p "$MESH_DIR"
cat >"$MESH_DIR/mesh-policy.yaml" <<'YAML'
defaults:
  meshCidrs: [10.77.0.0/24]
  inboundMode: STRICT
workloads:
  - namespace: shop
    inboundPorts:
      - port: 8080
        allow: [spiffe://cluster.local/ns/shop/*]
YAML
CA_ARGS=(--policy-file="$MESH_DIR/mesh-policy.yaml")
mesh_up || fail "mesh did not come up"
start_pod b shop server STRICT "" ', "policy_from_agent": true' || fail "pod b"
start_pod a shop client STRICT "" ', "policy_from_agent": true' || fail "pod a"
start_echo_app b 8080
B="${POD_IP[b]}"
[[ "$(send_from a "$B" 8080 hello)" == hello ]] || fail "meshed request a -> b not answered"
# One refusal, so a handshake failure reason has a non-zero rate.
[[ -z "$(send_from plain "$B" 8080 plaintext)" ]] || fail "STRICT let plaintext through"

# Traffic from a to b for as long as Prometheus watches: bounded in count (600) and time
# (60 s); the test kills it when done.
spawn a "$MESH_DIR/traffic.log" timeout 60 bash -c \
  "for i in \$(seq 1 600); do echo req-\$i | timeout 3 socat -t 1 - TCP:$B:8080; sleep 0.1; done"

start_prometheus "$OBS/alerts.yaml" || fail "Prometheus did not start"
echo "ok: Prometheus is ready in pod plain"

all_up() {
  prom_query 'count(up == 1) == 5' | grep -q '"result":\[{'
}
wait_for 30 all_up || {
  in_ns plain curl -s "$PROM_URL/api/v1/targets"; echo
  fail "Prometheus did not scrape all 5 targets (2 proxies, 2 agents, the CA)"
}
echo "ok: all 5 targets are up"

in_ns plain python3 "$HERE/query_expressions.py" "$PROM_URL" "$OBS/alerts.yaml" \
  "$OBS/grafana/tandem-mesh.json" 30 || fail "expressions without data (above)"

# The traffic panels' labels name the two workloads: pod b's proxy (reporter
# destination) saw mTLS connections from shop/client (its peer's SPIFFE ID) to
# shop/server (its own ISTIO_META_WORKLOAD_NAME and POD_NAMESPACE, set by netns-lib).
pair='istio_tcp_connections_opened_total{reporter="destination",source_workload="client",'
pair+='source_workload_namespace="shop",destination_workload="server",'
pair+='destination_workload_namespace="shop",connection_security_policy="mutual_tls"} > 0'
prom_query "$pair" | grep -q '"result":\[{' || {
  prom_query 'istio_tcp_connections_opened_total'; echo
  fail "no mTLS connections from shop/client to shop/server in istio_tcp_connections_opened_total"
}
echo "ok: istio_tcp_connections_opened_total names shop/client -> shop/server over mutual_tls"

# One alert end to end, firing for real: a policy allowing another trust domain's
# identities is valid for the CA (federation) but names a domain these proxies have no
# roots for, so both NACK it and count it refused; TandemProxyNackingPolicy has no
# `for`, so it fires at the first rule evaluation after the next scrape.
sed -i 's#spiffe://cluster.local/ns/shop/\*#spiffe://partner.example/*#' \
  "$MESH_DIR/mesh-policy.yaml"
both_nacking() {
  prom_query 'count(ALERTS{alertname="TandemProxyNackingPolicy",alertstate="firing"}) == 2' |
    grep -q '"result":\[{'
}
wait_for 30 both_nacking || {
  prom_query 'ALERTS'; echo
  fail "TandemProxyNackingPolicy did not fire for both proxies after a policy they refuse"
}
echo "ok: TandemProxyNackingPolicy fires for both proxies after a policy they NACK"
echo "all observability e2e checks passed in $SECONDS s"
