#!/usr/bin/env bash
# The container images in podman pods (deploy/images/build.sh builds them): the proxy
# image's init container installs the capture in the pod's network namespace, the test
# app answers by pod IP from another pod on an excluded port and is captured on another,
# and the sidecar binaries run as their image's user with a read-only root filesystem.
# Skipped (77) unless root with podman and mmdebstrap.
set -uo pipefail
BUILD="$(cd "${1:?usage: images_e2e_test.sh BUILD_DIR}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/podman-lib.sh"
command -v mmdebstrap >/dev/null || { echo "SKIP: needs mmdebstrap"; exit 77; }
pl_init || exit $?

failures=0
check() {
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
# check_cmd WHAT CMD...: a check that prints the command's output when it fails.
check_cmd() {
  local what="$1" out; shift
  if out="$("$@" 2>&1)"; then
    echo "ok: $what"
  else
    echo "FAIL: $what"; echo "$out" | tail -20; failures=$((failures + 1))
  fi
}
fail_now() { echo "FAIL: $*"; pl_logs; exit 1; }

pl_log "building the images"
"$PL_ROOT/deploy/images/build.sh" "$BUILD" || fail_now "deploy/images/build.sh failed"

PROXY=localhost/tandem/proxy:dev CA=localhost/tandem/ca:dev APP=localhost/tandem/testapp:dev
# --read-only-tmpfs=false: no tmpfs on /tmp or /run either, so a write anywhere fails.
ro_run() { podman run --rm --network none --read-only --read-only-tmpfs=false "$@"; }
check "the proxy image runs as 1337:1337 by default" \
  test "$(podman image inspect --format '{{.Config.User}}' "$PROXY")" == 1337:1337
check_cmd "tandem-proxy --help runs as uid 1337 on a read-only root" ro_run "$PROXY" --help
check_cmd "tandem-agent finds its shared libraries in the proxy image" \
  ro_run --entrypoint /usr/local/bin/tandem-agent "$PROXY" --help
check "the proxy image's processes run as uid 1337" \
  test "$(ro_run --entrypoint /usr/bin/id "$PROXY" -u)" == 1337
check_cmd "tandem-ca runs as a non-root user on a read-only root (writing a key to a volume)" \
  ro_run --tmpfs /keys:mode=1777 "$CA" gen-signing-key --out=/keys/k.pem
check "the CA image's user is not root" \
  test "$(ro_run --entrypoint /usr/bin/id "$CA" -u)" -ne 0

# The server pod: the capture init container, then the app twice: on 8080 (excluded
# from inbound capture) and on 9090 (captured: redirected to 15006, where no proxy
# listens in this test, so a connection is refused).
WORK="$PL_WORK"
cat >"$WORK/server.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: tandem-e2e-server
spec:
  restartPolicy: OnFailure
  initContainers:
    - name: tandem-init
      image: $PROXY
      imagePullPolicy: Never
      command: ["/usr/local/bin/tandem-iptables.sh"]
      env:
        - {name: TANDEM_EXCLUDE_INBOUND_PORTS, value: "15000,15001,15006,15020,15021,15090,8080"}
      securityContext:
        runAsUser: 0
        capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}
  containers:
    - name: app
      image: $APP
      imagePullPolicy: Never
      args: ["serve", "--port", "8080"]
      securityContext: {readOnlyRootFilesystem: true, runAsNonRoot: true}
    - name: captured
      image: $APP
      imagePullPolicy: Never
      args: ["serve", "--port", "9090"]
YAML
# The library refuses what podman 4.3 would restart in a loop.
sed '/restartPolicy/d' "$WORK/server.yaml" >"$WORK/restarting.yaml"
check "a pod with init containers and the default restartPolicy is refused" \
  bash -c "source $HERE/podman-lib.sh; ! pl_play $WORK/restarting.yaml >$WORK/refusal.txt"
check "the refusal says why" grep -q 'applies the pod.s restartPolicy to init containers' "$WORK/refusal.txt"

pl_log "playing the server pod"
pl_play "$WORK/server.yaml" || fail_now "the server pod did not start"
for ctr in tandem-e2e-server-app tandem-e2e-server-captured; do
  pl_wait_state "$ctr" running 60 || fail_now "$ctr did not start"
done
rules="$(pl_exec_netns tandem-e2e-server iptables-nft-save -t nat 2>/dev/null;
         pl_exec_netns tandem-e2e-server iptables-legacy-save -t nat 2>/dev/null)"
check "the capture chains are in the pod's network namespace" \
  grep -q -- '-A TANDEM_REDIRECT -p tcp -j REDIRECT --to-ports 15001' <<<"$rules"
check "the inbound hook is installed there" grep -q -- '-A PREROUTING -p tcp -j TANDEM_INBOUND' <<<"$rules"
check "the app runs as its image's non-root user on a read-only root" \
  test "$(podman inspect --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}' \
          tandem-e2e-server-app)" == "65534:65534 true"
server_ip="$(pl_pod_ip tandem-e2e-server)"
[[ -n "$server_ip" ]] || fail_now "no pod IP for the server pod"
pl_log "server pod at $server_ip"

# The app logs its listening line before accepting; wait for it rather than retrying.
pl_wait_log tandem-e2e-server-app 'listening on port 8080' 30 || fail_now "the app never listened"

client_pod() {  # client_pod NAME URL COUNT: a pod running the app in client mode
  cat >"$WORK/$1.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $1
spec:
  restartPolicy: Never
  containers:
    - name: client
      image: $APP
      imagePullPolicy: Never
      args: ["client", "--url", "$2", "--count", "$3", "--timeout-ms", "5000"]
YAML
  pl_play "$WORK/$1.yaml" || fail_now "pod $1 did not start"
  pl_wait_state "$1-client" exited 120 || fail_now "pod $1 did not finish"
}

client_pod tandem-e2e-client "http://$server_ip:8080/echo?msg=from-another-pod" 20
check "the app answers 20 of 20 requests by pod IP from another pod" \
  test "$(pl_exit_code tandem-e2e-client-client)" -eq 0
check "the client counted them" grep -qx 'ok=20 failed=0' <<<"$(podman logs tandem-e2e-client-client 2>&1)"
# The client pod has exited (and left the network) by now: any address on the network
# other than the server's own shows the app saw the other pod, not a NAT address.
served="$(podman logs tandem-e2e-server-app 2>&1 |
          sed -n 's/^testapp: GET \/echo?msg=from-another-pod from \[::ffff:\([0-9.]*\)\]:[0-9]* -> 200$/\1/p; s/^testapp: GET \/echo?msg=from-another-pod from \([0-9.]*\):[0-9]* -> 200$/\1/p')"
peers="$(sort -u <<<"$served")"
check "the app logged each of the 20 requests" test "$(grep -c . <<<"$served")" -eq 20
check "all from the client pod's address" \
  bash -c "[[ \$(wc -l <<<'$peers') -eq 1 && '$peers' == ${PL_SUBNET%.*}.* && '$peers' != '$server_ip' ]]"
client_pod tandem-e2e-captured "http://$server_ip:9090/ready" 1
check "a captured port goes to the (absent) proxy: refused" \
  grep -q 'failed: connect: Connection refused' <<<"$(podman logs tandem-e2e-captured-client 2>&1)"
check "and the app behind it never saw the request" \
  bash -c '! podman logs tandem-e2e-server-captured 2>&1 | grep -q "GET /ready"'

if ((failures)); then
  echo "$failures checks failed; containers:"; pl_logs; exit 1
fi
echo "all image checks passed"
