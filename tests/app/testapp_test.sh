#!/usr/bin/env bash
# tandem-testapp on loopback: serve and client modes, the echo check, every refusal.
set -uo pipefail
APP="$1"
DIR="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
failures=0
check() {
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}

"$APP" serve --port 0 >"$DIR/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do  # up to 10 s for the listening line
  port="$(sed -n 's/^tandem-testapp: listening on port \([0-9]*\)$/\1/p' "$DIR/server.log")"
  [[ -n "$port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "FAIL: the server did not report its port"; cat "$DIR/server.log"; exit 1
fi
client() { "$APP" client "$@" >"$DIR/client.out" 2>&1; }
out() { cat "$DIR/client.out"; }

check "GET /ready succeeds 3 times" client --url "http://127.0.0.1:$port/ready" --count 3
check "the client reports its counts" grep -qx 'ok=3 failed=0' "$DIR/client.out"
check "GET /echo returns msg" client --url "http://127.0.0.1:$port/echo?msg=hello%20mesh" --count 2
check "IPv6 literal URLs work" client --url "http://[::1]:$port/ready"
client --url "http://127.0.0.1:$port/nope" --count 2; rc=$?
check "a 404 is a failure (exit 1)" test "$rc" -eq 1
check "the failure says why" grep -q 'failed: status 404' "$DIR/client.out"
check "failures are counted" grep -qx 'ok=0 failed=2' "$DIR/client.out"
client --url "http://127.0.0.1:$port/echo"; rc=$?
check "an echo without msg is refused (400)" grep -q 'failed: status 400' "$DIR/client.out"
client --url "http://localhost:$port/ready"; rc=$?
check "a host name is refused (exit 2)" test "$rc" -eq 2
check "the refusal names the rule" grep -q 'URL host must be an IP address' "$DIR/client.out"
client --url "https://127.0.0.1:$port/"; rc=$?
check "https is refused" grep -q 'URL must start with http://' "$DIR/client.out"
client --url "http://127.0.0.1:99999/"; rc=$?
check "a bad port is refused" grep -q 'bad URL port' "$DIR/client.out"
client --url "http://127.0.0.1:$port/" --count 0; rc=$?
check "--count 0 is refused" grep -q 'bad value for --count: 0' "$DIR/client.out"
"$APP" serve --url x >"$DIR/client.out" 2>&1; rc=$?
check "a client flag in serve mode is refused" grep -q 'unknown flag --url for serve' "$DIR/client.out"
reply="$(printf 'BREW /pot HTCPCP/1.0\r\n\r\n' | timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat >&3; cat <&3")"
check "a malformed request line gets 400 and the reason" grep -q 'malformed request line' <<<"$reply"
check "the server logs each request with the peer address" \
  grep -Eq '^testapp: GET /ready from (\[::ffff:127\.0\.0\.1\]|127\.0\.0\.1):[0-9]+ -> 200$' "$DIR/server.log"
client --url "http://127.0.0.1:$port/echo?msg=x&delay_ms=999999"; rc=$?
check "a delay over 60000 ms is refused (400)" grep -q 'failed: status 400' "$DIR/client.out"

# SIGTERM while a delayed request is in flight: the server answers it, then exits 0.
"$APP" client --url "http://127.0.0.1:$port/echo?msg=late&delay_ms=1000" >"$DIR/late.out" 2>&1 &
late_pid=$!
for _ in $(seq 100); do  # up to 10 s for the request to arrive
  grep -q 'testapp: holding GET /echo?msg=late' "$DIR/server.log" && break
  sleep 0.1
done
kill -TERM "$server_pid"
wait "$server_pid"; rc=$?
server_pid=""
wait "$late_pid"; late_rc=$?
check "on SIGTERM the server exits 0" test "$rc" -eq 0
check "after answering the request in flight" test "$late_rc" -eq 0
check "and says it drained" grep -q '^testapp: drained$' "$DIR/server.log"
if ((failures)); then
  echo "$failures checks failed; server log:"; cat "$DIR/server.log"; exit 1
fi
echo "all testapp checks passed"
