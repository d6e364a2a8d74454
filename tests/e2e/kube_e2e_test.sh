#!/usr/bin/env bash
# Meshed pods in a real pod runtime: tandem's images, its injector and its sidecars under
# podman (`kube play`), on a podman network of this test's own.
#
# tandem-ca runs from its image with the injector webhook on; a server and a client
# Deployment (the test app) are turned into pods the way the API server would, sent to
# the running webhook as AdmissionReview v1 over HTTPS, patched with the JSONPatch it
# returns (tests/e2e/kube_pods.py; it also lists what podman 4.3 needs that a kubelet
# does itself), and played. Then:
#   - the client reaches the server by pod IP; the server app sees plaintext, from its
#     sidecar over loopback; the sidecars did mTLS with the pods' SPIFFE identities;
#   - a capture on the pod network shows TLS and none of the app's payload;
#   - the server's readiness probe, rewritten to the agent's /app-health on 15020,
#     passes in STRICT mode, where the original probe to the app port is refused;
#   - the excluded port (annotations) bypasses both proxies: plaintext on the wire, the
#     app sees the client pod's address;
#   - terminating the server pod with a request in flight: the request completes, and
#     the proxy exits 0 once the connection is done, not at its drain deadline.
# Skipped (77) unless root with podman and mmdebstrap.
set -uo pipefail
BUILD="$(cd "${1:?usage: kube_e2e_test.sh BUILD_DIR}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
PL_SUBNET=10.89.78.0/24
source "$HERE/podman-lib.sh"
command -v mmdebstrap >/dev/null || { echo "SKIP: needs mmdebstrap"; exit 77; }
pl_init || exit $?
WORK="$PL_WORK"
CA_IP=10.89.78.2
NS=shop
SECRET="meshed-payload-$$"

failures=0
check() {
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
ca_log() { echo "---- tandem-ca"; podman logs tandem-e2e-ca 2>&1 | tail -60; }
fail_now() { echo "FAIL: $*"; ca_log; pl_logs; exit 1; }
# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s, bounded.
wait_for() {
  local limit="$1" what="$2" deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail_now "$what (not within $limit s)"
    sleep 0.2
  done
}

pl_log "building the images"
"$PL_ROOT/deploy/images/build.sh" "$BUILD" >"$WORK/images.log" 2>&1 ||
  { cat "$WORK/images.log"; fail_now "deploy/images/build.sh failed"; }

# --- The control plane: tandem-ca from its image, the injector on, tokens signed by a
# key of the test's own (what the API server's TokenReview vouches for in a cluster).
CA_BIN="$BUILD/controlplane/tandem-ca"
mkdir -p "$WORK/keys" "$WORK/ca"
"$CA_BIN" gen-signing-key --out="$WORK/token.key" >/dev/null || fail_now "gen-signing-key"
"$CA_BIN" public-key --key="$WORK/token.key" >"$WORK/keys/token.pub" || fail_now "public-key"
chmod 755 "$WORK/keys" && chmod 644 "$WORK/keys/token.pub"
chown 1000:1000 "$WORK/ca" && chmod 700 "$WORK/ca"  # the CA image's user owns its root
INJECTION="$PL_ROOT/deploy/kubernetes/injection"
podman run -d --name tandem-e2e-ca --network "$PL_NET" --ip "$CA_IP" \
  -v "$WORK/keys:/keys:ro" -v "$WORK/ca:/var/lib/tandem-ca" \
  -v "$INJECTION/sidecar-template.yaml:/etc/tandem/injection/sidecar-template.yaml:ro" \
  -v "$PL_ROOT/deploy/kubernetes/ca/mesh-policy.yaml:/etc/tandem/policy/mesh-policy.yaml:ro" \
  localhost/tandem/ca:dev serve --root-dir=/var/lib/tandem-ca \
  --listen=0.0.0.0:15012 --metrics=0.0.0.0:15014 --token-public-key=/keys/token.pub \
  --dns-names=tandem-ca.tandem-system.svc --default-ttl=1h \
  --policy-file=/etc/tandem/policy/mesh-policy.yaml \
  --injector-listen=0.0.0.0:15017 --injector-dns-names=tandem-injector.tandem-system.svc \
  --webhook-config= --template=/etc/tandem/injection/sidecar-template.yaml \
  --proxy-image=localhost/tandem/proxy:dev --sidecar-ca-address="$CA_IP:15012" \
  >/dev/null || fail_now "tandem-ca did not start"
wait_for 60 "tandem-ca serves the injector" \
  bash -c "podman logs tandem-e2e-ca 2>&1 | grep -q 'listening listener=injector'"
curl -sf "http://$CA_IP:15014/trust-bundle" -o "$WORK/bundle.pem" ||
  fail_now "no trust bundle from tandem-ca"

# --- Two Deployments of the test app, in the classic sidecar layout (podman 4.3 has no
# native sidecars). The server also serves 9090, excluded from capture on both sides.
cat >"$WORK/server.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: server, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  template:
    metadata:
      labels: {app: server}
      annotations:
        sidecar.tandem.dev/sidecar-mode: classic
        sidecar.tandem.dev/exclude-inbound-ports: "9090"
    spec:
      serviceAccountName: server
      containers:
        - name: server
          image: localhost/tandem/testapp:dev
          args: [serve, --port, "8080"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /ready, port: http}
            periodSeconds: 2
        - name: bypass
          image: localhost/tandem/testapp:dev
          args: [serve, --port, "9090"]
YAML
cat >"$WORK/client.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata:
      labels: {app: client}
      annotations:
        sidecar.tandem.dev/sidecar-mode: classic
        sidecar.tandem.dev/exclude-outbound-ports: "9090"
    spec:
      serviceAccountName: client
      containers:
        - name: client
          image: localhost/tandem/testapp:dev
          args: [serve, --port, "8081"]  # idles; the test runs its client mode
YAML
for cm in tandem-ca-root tandem-proxy-config; do
  case $cm in
    tandem-ca-root) key=ca-cert.pem file="$WORK/bundle.pem" ;;
    tandem-proxy-config) key=proxy.json file="$INJECTION/proxy.json" ;;
  esac
  python3 - "$cm" "$key" "$file" >"$WORK/$cm.yaml" <<'PY'
import sys, yaml
name, key, path = sys.argv[1:]
yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "shop"},
                "data": {key: open(path).read()}}, sys.stdout)
PY
done

for app in server client; do
  pl_log "injecting the $app Deployment's pod through the webhook"
  python3 "$HERE/kube_pods.py" review "$WORK/$app.yaml" "$NS" >"$WORK/$app-review.json" ||
    fail_now "no review for $app"
  curl -sS --fail-with-body --cacert "$WORK/bundle.pem" --tlsv1.3 \
    --resolve "tandem-injector.tandem-system.svc:15017:$CA_IP" \
    -H 'Content-Type: application/json' --data-binary "@$WORK/$app-review.json" \
    https://tandem-injector.tandem-system.svc:15017/inject >"$WORK/$app-response.json" ||
    { cat "$WORK/$app-response.json"; fail_now "the webhook refused the $app review"; }
  python3 "$HERE/kube_pods.py" admit "$WORK/$app-review.json" "$WORK/$app-response.json" \
    >"$WORK/$app-pod.json" || fail_now "the $app pod was not admitted"
  mkdir -p "$WORK/tokens/$app"
  "$CA_BIN" mint-token --key="$WORK/token.key" --namespace="$NS" --service-account="$app" \
    --audience=istio-ca >"$WORK/tokens/$app/istio-token" || fail_now "mint-token $app"
  chmod 755 "$WORK/tokens" "$WORK/tokens/$app" && chmod 644 "$WORK/tokens/$app/istio-token"
  python3 "$HERE/kube_pods.py" podman "$WORK/$app-pod.json" "tandem-e2e-$app" \
    "$WORK/tokens/$app" >"$WORK/$app-pod.yaml" || fail_now "no podman pod for $app"
done
containers() { python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["spec"]; print(" ".join(c["name"] for c in p.get("initContainers",[])+p["containers"]))' "$1"; }
check "the webhook added the sidecar to the server pod (classic layout)" \
  test "$(containers "$WORK/server-pod.json")" == "tandem-init tandem-agent tandem-proxy server bypass"
check "and to the client pod" \
  test "$(containers "$WORK/client-pod.json")" == "tandem-init tandem-agent tandem-proxy client"

for app in server client; do
  pl_log "playing the $app pod"
  pl_play "$WORK/$app-pod.yaml" --configmap "$WORK/tandem-ca-root.yaml" \
    --configmap "$WORK/tandem-proxy-config.yaml" || fail_now "the $app pod did not start"
done
SERVER_IP="$(pl_pod_ip tandem-e2e-server)"
CLIENT_IP="$(pl_pod_ip tandem-e2e-client)"
[[ -n "$SERVER_IP" && -n "$CLIENT_IP" ]] || fail_now "the pods have no addresses"
pl_log "server pod at $SERVER_IP, client pod at $CLIENT_IP"
for ip in "$SERVER_IP" "$CLIENT_IP"; do
  wait_for 90 "the sidecar at $ip becomes ready (certificate from the CA)" \
    curl -sf "http://$ip:15021/healthz/ready"
done
wait_for 30 "the server app listens" \
  bash -c "podman logs tandem-e2e-server-server 2>&1 | grep -q 'listening on port 8080'"

# The capture runs on the server pod's own interface (in its network namespace): a
# capture on the bridge device sees pod-to-pod frames only until the bridge has learned
# both pods' MAC addresses (measured: it lost every packet after the first second).
netns="$(pl_netns_pid tandem-e2e-server)" || fail_now "no network namespace for the server pod"
nsenter --target "$netns" --net -- timeout 120 tcpdump -i eth0 -U \
  -w "$WORK/wire.pcap" tcp >/dev/null 2>"$WORK/tcpdump.log" &
TCPDUMP=$!  # nsenter execs timeout, which passes our SIGTERM on to tcpdump
wait_for 10 "tcpdump listens in the server pod" grep -q 'listening on' "$WORK/tcpdump.log"

client() {  # client URL COUNT: the test app's client mode inside the client pod
  podman exec tandem-e2e-client-client /tandem-testapp client --url "$1" --count "$2" \
    --timeout-ms 20000
}

# --- Pod to pod through the mesh.
out="$(client "http://$SERVER_IP:8080/echo?msg=$SECRET" 20 2>&1)"
check "the client reaches the server by pod IP: 20 of 20 echoed" grep -qx 'ok=20 failed=0' <<<"$out"
served="$(podman logs tandem-e2e-server-server 2>&1 | grep -c "^testapp: GET /echo?msg=$SECRET from \(\[::ffff:127.0.0.1\]\|127.0.0.1\|\[::1\]\):[0-9]* -> 200$")"
check "the server app read plaintext HTTP from its sidecar over loopback (20 requests)" \
  test "$served" -eq 20
metric() {  # metric IP SAMPLE: a sample's value from the proxy's /metrics
  curl -sf "http://$1:15090/metrics" | awk -v s="$2" 'index($0, s " ") == 1 {print $2}'
}
check "the server's proxy accepted them as mTLS" test "$(metric "$SERVER_IP" \
  'tandem_proxy_connections_opened_total{direction="inbound",mode="mtls"}')" -ge 20
check "the client's proxy opened them as mTLS" test "$(metric "$CLIENT_IP" \
  'tandem_proxy_connections_opened_total{direction="outbound",mode="mtls"}')" -ge 20
for sa in server client; do
  check "the $sa pod's agent holds a certificate from the CA for its SPIFFE identity" \
    bash -c "podman logs tandem-e2e-$sa-tandem-agent 2>&1 |
             grep -q 'certificate installed .*spiffe_id=spiffe://cluster.local/ns/$NS/sa/$sa '"
done

# --- The excluded port bypasses both sidecars.
out="$(client "http://$SERVER_IP:9090/echo?msg=bypass-$$" 3 2>&1)"
check "the excluded port answers 3 of 3" grep -qx 'ok=3 failed=0' <<<"$out"
check "the app on it sees the client pod's own address (no proxy in between)" \
  bash -c "podman logs tandem-e2e-server-bypass 2>&1 | grep -q 'GET /echo?msg=bypass-$$ from \(\[::ffff:\)\?$CLIENT_IP\]\?:'"

# --- The readiness probe, rewritten by the injector, in STRICT mode. The test does
# what the kubelet does: an HTTP GET from outside the pod to the probe's port and path.
probe="$(python3 -c 'import json,sys; c=[c for c in json.load(open(sys.argv[1]))["spec"]["containers"] if c["name"]=="server"][0]["readinessProbe"]["httpGet"]; print(c["port"], c["path"])' "$WORK/server-pod.json")"
check "the injector moved the readiness probe to the agent" \
  test "$probe" == "15020 /app-health/server/readyz"
check "the rewritten probe passes (200 from the agent, which asked the app)" \
  curl -sf -o /dev/null "http://$SERVER_IP:15020/app-health/server/readyz"
check "the original probe, plaintext to the app port, is refused in STRICT mode" \
  bash -c "! curl -sf -m 10 -o /dev/null http://$SERVER_IP:8080/ready"

# --- On the wire.
# The capture is written as packets come, but still later than they pass: wait for
# the ends (FIN) of the three bypass connections, the last pod-to-pod traffic above.
bypass_fins() {
  [[ "$(tcpdump -r "$WORK/wire.pcap" 'tcp port 9090 and tcp[tcpflags] & tcp-fin != 0' \
        2>/dev/null | wc -l)" -ge 6 ]]
}
wait_for 20 "the capture holds the bypass connections' ends" bypass_fins
kill "$TCPDUMP" 2>/dev/null; wait "$TCPDUMP" 2>/dev/null
check "the capture lost no packet (what it lacks cannot be judged)" \
  grep -q '^0 packets dropped by kernel' "$WORK/tcpdump.log"
hex="$(tcpdump -r "$WORK/wire.pcap" -x 'tcp port 8080' 2>/dev/null)"
ascii8080="$(tcpdump -r "$WORK/wire.pcap" -A 'tcp port 8080' 2>/dev/null)"
ascii9090="$(tcpdump -r "$WORK/wire.pcap" -A 'tcp port 9090' 2>/dev/null)"
check "pod-to-pod bytes on port 8080 are TLS (handshake records 0x16 0x03)" \
  grep -q '1603 0[13]' <<<"$hex"
check "none of the app's payload is readable on the wire" \
  test "$(grep -c "$SECRET" <<<"$ascii8080")" -eq 0
check "the excluded port's traffic is plaintext on the wire (it bypassed the mesh)" \
  grep -q "bypass-$$" <<<"$ascii9090"

# --- Stopping the server pod with a request in flight.
client "http://$SERVER_IP:8080/echo?msg=drained-$$&delay_ms=3000" 1 >"$WORK/drain.out" 2>&1 &
DRAIN=$!
wait_for 20 "the slow request reaches the server app" \
  bash -c "podman logs tandem-e2e-server-server 2>&1 | grep -q 'holding GET /echo?msg=drained-$$'"
# The kubelet sends SIGTERM to every container of a terminating pod and keeps the pod's
# network until they have exited; podman 4.3's `pod stop` tears the network down while
# they still run (measured: the in-flight response never left the pod). So the test
# signals the containers itself, as the kubelet would, and waits for them.
pl_log "terminating the server pod's containers mid-request"
ctrs="$(podman ps --filter pod=tandem-e2e-server --format '{{.Names}}' | grep -v -- '-infra$')"
podman kill -s TERM $ctrs >/dev/null
for ctr in $ctrs; do pl_wait_state "$ctr" exited 60 || fail_now "$ctr did not exit"; done
wait "$DRAIN"
check "the request in flight completed while the pod terminated" \
  grep -qx 'ok=1 failed=0' "$WORK/drain.out"
grep -qx 'ok=1 failed=0' "$WORK/drain.out" || cat "$WORK/drain.out"
check "the server's tandem-proxy exited 0" \
  test "$(pl_exit_code tandem-e2e-server-tandem-proxy)" -eq 0
check "after draining the connection, not at the drain deadline" \
  bash -c "podman logs tandem-e2e-server-tandem-proxy 2>&1 | grep -q 'exiting cut_at_drain_deadline=0'"

if ((failures)); then
  echo "$failures checks failed"; ca_log; pl_logs; exit 1
fi
echo "all pod-runtime checks passed"
