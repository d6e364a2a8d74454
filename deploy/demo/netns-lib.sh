# shellcheck shell=bash
# Shared by deploy/demo/mesh.sh and tests/e2e: builds a small "cluster" out of network
# namespaces on this machine — a CA pod, two meshed pods (app + tandem-agent +
# tandem-proxy + the real iptables capture), and a plain pod without a sidecar — all
# joined by a bridge that lives in a namespace of its own. Only addresses inside these
# namespaces (10.77.0.0/24, and fd77:77::/64 with MESH_IPV6=1) are ever used. Source
# it; call mesh_up, then mesh_down.
#
# MESH_IPV6=1 makes the pods dual-stack: each also gets an address of our own ULA
# prefix, the capture is installed for ip6tables too (--ipv6 on), and the echo apps
# listen on both families.
#
# CA_ARGS (a bash array, e.g. CA_ARGS=(--policy-file=F)) adds flags to `tandem-ca
# serve`; AGENT_METRICS (default 127.0.0.1:15019) is where the agents serve /metrics,
# 0.0.0.0:15019 to let a Prometheus in another pod scrape them.
#
# Needs: root, iproute2, iptables, setpriv (util-linux), socat, curl.

: "${TANDEM_BUILD:?set TANDEM_BUILD to the build directory}"
TANDEM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# From our pid (6 hex digits hold any Linux pid), so meshes built at the same time never
# share names; "v<id>plain" stays within the 15 characters of an interface name.
MESH_ID="${MESH_ID:-$(printf '%06x' $(($$ % 16777216)))}"
MESH_DIR="${MESH_DIR:-/tmp/tandem-mesh-$MESH_ID}"
NS_NET="t$MESH_ID-net"
PROXY_UID=1337
CERT_TTL="${CERT_TTL:-20s}"
MESH_IPV6="${MESH_IPV6:-0}"
declare -A POD_IP=([ca]=10.77.0.10 [a]=10.77.0.11 [b]=10.77.0.12 [plain]=10.77.0.13)
declare -A POD_IP6=([ca]=fd77:77::10 [a]=fd77:77::11 [b]=fd77:77::12 [plain]=fd77:77::13)

ns() { echo "t$MESH_ID-$1"; }
in_ns() { local n="$1"; shift; ip netns exec "$(ns "$n")" "$@"; }
# Prefix that runs a command as the proxy's uid, whose traffic iptables never captures.
AS_PROXY=(setpriv "--reuid=$PROXY_UID" "--regid=$PROXY_UID" --clear-groups --)

# Starts a background command inside pod $1 and records its pid; output to $2.
spawn() {
  local pod="$1" log="$2"; shift 2
  ip netns exec "$(ns "$pod")" "$@" >"$log" 2>&1 &
  echo $! >>"$MESH_DIR/pids"
}

wait_for() {  # wait_for SECONDS CMD...: polls every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

mesh_up() {
  mkdir -p "$MESH_DIR"
  chmod 755 "$MESH_DIR"
  : >"$MESH_DIR/pids"
  ip netns add "$NS_NET"
  ip -n "$NS_NET" link add br0 type bridge
  ip -n "$NS_NET" link set br0 up
  ip -n "$NS_NET" link set lo up
  for pod in ca a b plain; do
    ip netns add "$(ns $pod)"
    ip link add "v$MESH_ID$pod" type veth peer name eth0 netns "$(ns $pod)"
    ip link set "v$MESH_ID$pod" netns "$NS_NET"
    ip -n "$NS_NET" link set "v$MESH_ID$pod" master br0 up
    in_ns $pod ip link set lo up
    in_ns $pod ip addr add "${POD_IP[$pod]}/24" dev eth0
    if [[ $MESH_IPV6 == 1 ]]; then
      # nodad: usable at once, no duplicate-address detection to wait for.
      in_ns $pod ip -6 addr add "${POD_IP6[$pod]}/64" dev eth0 nodad || return 1
    fi
    in_ns $pod ip link set eth0 up
  done
  # The CA: its own pod, a token signing key (the API server's role), owner-only root.
  local b="$TANDEM_BUILD"
  "$b/controlplane/tandem-ca" gen-signing-key --out="$MESH_DIR/token-key.pem"
  "$b/controlplane/tandem-ca" public-key --key="$MESH_DIR/token-key.pem" >"$MESH_DIR/token-key.pub"
  spawn ca "$MESH_DIR/ca.log" "$b/controlplane/tandem-ca" serve --root-dir="$MESH_DIR/ca-root" \
    --listen=0.0.0.0:15012 --metrics=0.0.0.0:15014 \
    --token-public-key="$MESH_DIR/token-key.pub" --default-ttl="$CERT_TTL" --max-ttl=1h \
    ${CA_ARGS[@]+"${CA_ARGS[@]}"}
  wait_for 20 in_ns ca curl -sf http://127.0.0.1:15014/healthz/ready ||
    { echo "CA did not start:"; cat "$MESH_DIR/ca.log"; return 1; }
  in_ns ca curl -sf http://127.0.0.1:15014/trust-bundle >"$MESH_DIR/ca-root.pem"
}

# start_pod POD NAMESPACE SERVICEACCOUNT MODE(STRICT|PERMISSIVE) [EXCLUDED_INBOUND_PORTS]
#           [EXTRA_PROXY_JSON, e.g. ', "inbound_ports": [...]']
# With APP_PROBES='{"/app-health/...": {...}}' before the call, the pod's agent serves
# those app probes on 15020 (docs/agent.md#app-probes-app-health-issue-14).
start_pod() {
  local pod="$1" kns="$2" sa="$3" mode="$4" exclude="${5:-}" extra="${6:-}"
  local dir="$MESH_DIR/$pod" b="$TANDEM_BUILD"
  mkdir -p "$dir/sds"
  "$b/controlplane/tandem-ca" mint-token --key="$MESH_DIR/token-key.pem" --namespace="$kns" \
    --service-account="$sa" --ttl=2h >"$dir/token"
  cat >"$dir/proxy.json" <<JSON
{"trust_domain": "cluster.local", "workers": 2, "socket_mark": 0,
 "mesh_cidrs": ["10.77.0.0/24", "fd77:77::/64"], "default_inbound_mode": "$mode",
 "sds_socket": "$dir/sds/sds.sock", "metrics_address": "0.0.0.0:15090" $extra}
JSON
  chown -R $PROXY_UID:$PROXY_UID "$dir"
  chmod 700 "$dir/sds"
  local excl="15000,15001,15006,15019,15020,15021,15090${exclude:+,$exclude}" ipv6=auto
  [[ $MESH_IPV6 == 1 ]] && ipv6=on
  in_ns "$pod" "$TANDEM_ROOT/deploy/iptables/tandem-iptables.sh" --ipv6 "$ipv6" \
    --exclude-inbound-ports "$excl" >"$dir/iptables.log" 2>&1 ||
    { echo "pod $pod: capture not installed:"; cat "$dir/iptables.log"; return 1; }
  # The agent answers the kubelet's rewritten probes on 15020 (excluded from capture,
  # as in the injected pod): APP_PROBES, set for this call, is its TANDEM_APP_PROBES.
  spawn "$pod" "$dir/agent.log" "${AS_PROXY[@]}" env TANDEM_APP_PROBES="${APP_PROBES:-}" \
    "$b/agent/tandem-agent" --app-health=0.0.0.0:15020 \
    --ca-address="${POD_IP[ca]}:15012" --ca-root="$MESH_DIR/ca-root.pem" \
    --token-file="$dir/token" --namespace="$kns" --service-account="$sa" \
    --sds-socket="$dir/sds/sds.sock" --proxy-uid=$PROXY_UID --validity="$CERT_TTL" \
    --metrics="${AGENT_METRICS:-127.0.0.1:15019}"
  # The pod's own side of istio_tcp_*, as the injector sets it: the workload is named
  # after its service account here (the peer side comes from the SPIFFE ID's sa/ns).
  spawn "$pod" "$dir/proxy.log" "${AS_PROXY[@]}" env ISTIO_META_WORKLOAD_NAME="$sa" \
    POD_NAMESPACE="$kns" "$b/proxy/tandem-proxy" --config="$dir/proxy.json"
  wait_for 20 in_ns "$pod" curl -sf http://127.0.0.1:15090/healthz/ready ||
    { echo "pod $pod not ready:"; cat "$dir/agent.log" "$dir/proxy.log"; return 1; }
}

# An echo app on PORT in POD (socat, one process per connection); both families with
# MESH_IPV6=1.
start_echo_app() {
  local listen="TCP-LISTEN:$2,reuseaddr,fork"
  [[ $MESH_IPV6 == 1 ]] && listen="TCP6-LISTEN:$2,ipv6only=0,reuseaddr,fork"
  spawn "$1" "$MESH_DIR/$1-app-$2.log" socat "$listen" EXEC:cat
  wait_for 10 in_ns "$1" bash -c "ss -ltn | grep -q ':$2 '"
}

# socat's address for IP (v4 or v6) and PORT.
tcp_address() {
  if [[ $1 == *:* ]]; then echo "TCP6:[$1]:$2"; else echo "TCP:$1:$2"; fi
}

# Sends MESSAGE from POD to IP:PORT (IPv4 or IPv6) and prints the echo (empty on
# failure).
send_from() {
  in_ns "$1" timeout 5 socat -t 2 - "$(tcp_address "$2" "$3"),connect-timeout=3" \
    <<<"$4" 2>/dev/null || true
}

# Runs Prometheus (Debian's `prometheus`) in pod plain, which has no sidecar and no
# capture, so its fixed port 9090 is private to that namespace. It scrapes both
# proxies, both agents (start the pods with AGENT_METRICS=0.0.0.0:15019) and the CA
# every second and loads the rule file $1 (optional). Query it with prom_query.
PROM_URL=http://127.0.0.1:9090
start_prometheus() {
  local rules="${1:-}" t
  {
    printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n'
    [[ -n "$rules" ]] && printf 'rule_files: [%s]\n' "$rules"
    echo 'scrape_configs:'
    for t in "tandem-proxy ${POD_IP[a]}:15090,${POD_IP[b]}:15090" \
      "tandem-agent ${POD_IP[a]}:15019,${POD_IP[b]}:15019" "tandem-ca ${POD_IP[ca]}:15014"; do
      printf '  - job_name: %s\n    static_configs: [{targets: [%s]}]\n' ${t}
    done
  } >"$MESH_DIR/prometheus.yml"
  spawn plain "$MESH_DIR/prometheus.log" prometheus --config.file="$MESH_DIR/prometheus.yml" \
    --storage.tsdb.path="$MESH_DIR/prometheus-data" --web.listen-address=127.0.0.1:9090
  wait_for 30 in_ns plain curl -sf "$PROM_URL/-/ready" ||
    { echo "Prometheus did not start:"; tail -n 30 "$MESH_DIR/prometheus.log"; return 1; }
}

prom_query() {  # prom_query PROMQL: the JSON answer of /api/v1/query
  in_ns plain curl -sf "$PROM_URL/api/v1/query" --data-urlencode "query=$1"
}

metric() {  # metric POD PORT SAMPLE
  in_ns "$1" curl -sf "http://127.0.0.1:$2/metrics" | awk -v s="$3" '$1 == s {print $2}'
}

mesh_down() {
  if [[ -f "$MESH_DIR/pids" ]]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$MESH_DIR/pids"
    sleep 0.3
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$MESH_DIR/pids"
  fi
  for pod in ca a b plain; do
    # Processes started inside (setpriv children) die with the namespace's last user;
    # kill what is left, then the namespace.
    for pid in $(ip netns pids "$(ns $pod)" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$(ns $pod)" 2>/dev/null || true
  done
  ip netns del "$NS_NET" 2>/dev/null || true
  [[ "${KEEP_MESH_DIR:-0}" == 1 ]] || rm -rf "$MESH_DIR"
}
