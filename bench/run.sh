#!/usr/bin/env bash
# Benchmarks tandem's proxy pair against an HAProxy pair doing the same mTLS
# origination/termination (same ECDSA P-256 certificates, TLS 1.3), plus the direct
# loopback baseline, in one run, alternating, medians of REPEATS (default 3).
#   bench/run.sh BUILD_DIR        (./dev bench)
# 127.0.0.1 only; every load loop is bounded in time. Writes bench/RESULTS.md.
set -euo pipefail
B="$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPEATS="${REPEATS:-3}"
SECS="${SECS:-4}"
HOLD="${HOLD:-2000}"
LG="$B/bench/tandem-loadgen"
for tool in haproxy iperf3 openssl; do
  command -v $tool >/dev/null || { echo "bench: $tool missing (apt-get install $tool)"; exit 1; }
done
W="$(mktemp -d /tmp/tandem-bench-XXXXXX)"
pids=()
PAIR_PIDS=()
cleanup() {
  kill "${pids[@]}" "${PAIR_PIDS[@]}" 2>/dev/null || true
  pkill -f "iperf3 -s -p 27081" 2>/dev/null || true
  [[ "${KEEP_BENCH_DIR:-0}" == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- certificates (openssl CLI: nothing of tandem's own code) ---
cd "$W"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/O=bench/CN=bench root" -days 2 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -out ca.crt 2>/dev/null
for who in client server; do
  openssl ecparam -name prime256v1 -genkey -noout -out $who.ec 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in $who.ec -out $who.key
  openssl req -new -key $who.key -subj "/O=bench" -out $who.csr \
    -addext "subjectAltName=critical,URI:spiffe://cluster.local/ns/bench/sa/$who" 2>/dev/null
  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -copy_extensions copy -extfile <(printf "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature") \
    -out $who.crt 2>/dev/null
  cat $who.crt $who.key >$who.pem
done

ECHO=27080 IPERF=27081
"$LG" echo $ECHO & pids+=($!)
iperf3 -s -p $IPERF -D --logfile "$W/iperf.log"
sleep 0.3

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# start_pair KIND APP_PORT -> sets ENTRY and PAIR_PIDS
start_pair() {
  local kind="$1" app="$2"
  PAIR_PIDS=()
  case "$kind" in
    direct) ENTRY=$app ;;
    tandem)
      ENTRY=27201
      cat >srv.json <<JSON
{"outbound_address": "127.0.0.1:27105", "inbound_address": "127.0.0.1:27106",
 "metrics_address": "127.0.0.1:27190", "admin_address": "127.0.0.1:27100",
 "health_address": "127.0.0.1:27121", "workers": 2, "socket_mark": 0,
 "inbound_fixed_app": "127.0.0.1:$app", "max_connections": 60000,
 "cert_chain_file": "$W/server.crt", "private_key_file": "$W/server.key", "trust_bundle_file": "$W/ca.crt"}
JSON
      cat >cli.json <<JSON
{"outbound_address": "127.0.0.1:27201", "inbound_address": "127.0.0.1:27206",
 "metrics_address": "127.0.0.1:27290", "admin_address": "127.0.0.1:27200",
 "health_address": "127.0.0.1:27221", "workers": 2, "socket_mark": 0,
 "outbound_fixed_destination": "127.0.0.1:27106", "max_connections": 60000,
 "cert_chain_file": "$W/client.crt", "private_key_file": "$W/client.key", "trust_bundle_file": "$W/ca.crt"}
JSON
      "$B/proxy/tandem-proxy" --config=srv.json 2>>tandem.log & PAIR_PIDS+=($!)
      "$B/proxy/tandem-proxy" --config=cli.json 2>>tandem.log & PAIR_PIDS+=($!)
      for _ in $(seq 50); do curl -sf http://127.0.0.1:27190/healthz/ready >/dev/null &&
        curl -sf http://127.0.0.1:27290/healthz/ready >/dev/null && break; sleep 0.1; done ;;
    haproxy)
      ENTRY=27301
      cat >haproxy.cfg <<CFG
global
  nbthread 2
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
  tune.ssl.default-dh-param 2048
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend plain_in
  bind 127.0.0.1:27301
  default_backend mtls_out
backend mtls_out
  server peer 127.0.0.1:27306 ssl crt $W/client.pem ca-file $W/ca.crt verify required verifyhost bench-skip
frontend mtls_in
  bind 127.0.0.1:27306 ssl crt $W/server.pem ca-file $W/ca.crt verify required
  default_backend app
backend app
  server app 127.0.0.1:$app
CFG
      # verifyhost checks a DNS name our SPIFFE certs do not carry; verify the chain only.
      sed -i 's/ verifyhost bench-skip//' haproxy.cfg
      haproxy -f haproxy.cfg -db 2>>haproxy.log & PAIR_PIDS+=($!)
      sleep 0.5
      kill -0 "${PAIR_PIDS[0]}" 2>/dev/null || { echo "haproxy failed:"; cat haproxy.log; exit 1; } ;;
  esac
}
# Bounded: TERM, up to 10 s for a drain, then KILL.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
stop_pair() {
  for p in "${PAIR_PIDS[@]}"; do stop_pid "$p"; done
  PAIR_PIDS=()
  sleep 0.3
}
pair_ticks() { local t=0; for p in "${PAIR_PIDS[@]}"; do t=$((t + $(ticks "$p"))); done; echo $t; }
pair_rss() { local r=0; for p in "${PAIR_PIDS[@]}"; do r=$((r + $(rss_kb "$p"))); done; echo $r; }
HZ="$(getconf CLK_TCK)"
field() { grep -o "$1=[0-9.]*" | cut -d= -f2; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

declare -A R
for rep in $(seq 1 "$REPEATS"); do
  for kind in direct tandem haproxy; do
    echo "bench: repetition $rep, $kind" >&2
    # 1. single-connection bulk throughput
    start_pair $kind $IPERF
    t0=$(pair_ticks)
    out="$(iperf3 -c 127.0.0.1 -p $ENTRY -t "$SECS" -J 2>/dev/null || echo '{}')"
    t1=$(pair_ticks)
    gbps="$(grep -o '"bits_per_second":[[:space:]]*[0-9.e+]*' <<<"$out" | tail -1 | awk -F: '{printf "%.2f", $2/1e9}')"
    bytes="$(grep -o '"bytes":[[:space:]]*[0-9]*' <<<"$out" | tail -1 | cut -d: -f2 | tr -dc '0-9')"
    R[$kind,gbps]+="${gbps:-0} "
    if [[ $kind != direct && -n "${bytes:-}" && "${bytes:-0}" -gt 0 ]]; then
      R[$kind,cpu_gb]+="$(awk -v t=$((t1 - t0)) -v hz=$HZ -v b="$bytes" 'BEGIN {printf "%.2f", t/hz/(b/1e9)}') "
    fi
    stop_pair
    # 2-5 against the echo backend
    start_pair $kind $ECHO
    [[ $kind != direct ]] && R[$kind,rss_idle]+="$(( $(pair_rss) / ${#PAIR_PIDS[@]} )) "
    lat="$("$LG" latency $ENTRY "$SECS" 8 2000)"
    R[$kind,p50]+="$(field p50_us <<<"$lat") "
    R[$kind,p99]+="$(field p99_us <<<"$lat") "
    t0=$(pair_ticks)
    cr="$("$LG" connrate $ENTRY "$SECS" 8)"
    t1=$(pair_ticks)
    cps="$(field conns_per_s <<<"$cr")"
    R[$kind,cps]+="$cps "
    R[$kind,cfail]+="$(field failed <<<"$cr") "
    if [[ $kind != direct ]]; then
      R[$kind,cpu_hs]+="$(awk -v t=$((t1 - t0)) -v hz=$HZ -v n="$cps" -v s="$SECS" 'BEGIN {printf "%.0f", (n > 0 ? t/hz/(n*s)*1e6 : 0)}') "
      r0=$(pair_rss)
      "$LG" hold $ENTRY "$HOLD" 3 >"$W/hold.out" &
      hold_pid=$!
      sleep 2.5
      r1=$(pair_rss)
      for _ in $(seq 100); do kill -0 $hold_pid 2>/dev/null || break; sleep 0.1; done
      held="$(field held <"$W/hold.out")"
      R[$kind,per_conn]+="$(awk -v a=$r0 -v b=$r1 -v n="${held:-1}" 'BEGIN {printf "%.1f", (b-a)/(n>0?n:1)/2}') "
    fi
    stop_pair
  done
done

m() { tr ' ' '\n' <<<"${R[$1]:-}" | sed '/^$/d' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf (b > 0 ? "%.2fx" : "n/a"), a/b}'; }
direct_p50="$(m direct,p50)"
added() { awk -v a="$1" -v d="$direct_p50" 'BEGIN {printf "%.1f", a - d}'; }
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
{
  echo "# Benchmark results"
  echo
  echo "Run: \`./dev bench\` (bench/run.sh), $(date -u +%F), $(nproc) cores ($cpu)."
  echo "Medians of $REPEATS alternating repetitions, ${SECS}s each, 127.0.0.1 only. Both"
  echo "proxy pairs: 2 threads each, TLS 1.3, the same ECDSA P-256 certificates, client"
  echo "certificates verified. HAProxy $(haproxy -v | head -1 | awk '{print $3}'). Noisy machine: treat"
  echo "differences under ~10% as noise."
  echo
  echo "| scenario | direct | tandem | HAProxy | tandem/HAProxy | target |"
  echo "|---|---|---|---|---|---|"
  echo "| 1 conn bulk throughput (iperf3), Gb/s | $(m direct,gbps) | $(m tandem,gbps) | $(m haproxy,gbps) | $(ratio "$(m tandem,gbps)" "$(m haproxy,gbps)") | ≥1.5x |"
  echo "| proxy CPU-seconds per GB (both proxies) | — | $(m tandem,cpu_gb) | $(m haproxy,cpu_gb) | $(ratio "$(m tandem,cpu_gb)" "$(m haproxy,cpu_gb)") | lower is better |"
  echo "| persistent conns @2000 rps: p50 µs | $(m direct,p50) | $(m tandem,p50) | $(m haproxy,p50) | added: $(added "$(m tandem,p50)") vs $(added "$(m haproxy,p50)") µs | added ≤0.5x |"
  echo "| persistent conns @2000 rps: p99 µs | $(m direct,p99) | $(m tandem,p99) | $(m haproxy,p99) | | |"
  echo "| new mTLS connections/s (8 clients) | $(m direct,cps) | $(m tandem,cps) | $(m haproxy,cps) | $(ratio "$(m tandem,cps)" "$(m haproxy,cps)") | ≥2x |"
  echo "| failed connections | $(m direct,cfail) | $(m tandem,cfail) | $(m haproxy,cfail) | | 0 |"
  echo "| proxy CPU µs per connection (both proxies) | — | $(m tandem,cpu_hs) | $(m haproxy,cpu_hs) | $(ratio "$(m tandem,cpu_hs)" "$(m haproxy,cpu_hs)") | |"
  echo "| RSS per proxy at idle, KB | — | $(m tandem,rss_idle) | $(m haproxy,rss_idle) | | ≤8192 |"
  echo "| RSS per idle mTLS connection per proxy, KB ($HOLD held) | — | $(m tandem,per_conn) | $(m haproxy,per_conn) | | ≤16 |"
  echo
  echo "Commands: \`tandem-loadgen latency PORT $SECS 8 2000\`, \`tandem-loadgen connrate PORT $SECS 8\`,"
  echo "\`iperf3 -c 127.0.0.1 -p PORT -t $SECS -J\`, \`tandem-loadgen hold PORT $HOLD 3\`; CPU from"
  echo "/proc/PID/stat utime+stime, RSS from /proc/PID/status. Connection-per-request numbers"
  echo "include session resumption where each proxy does it by default (tandem: client ticket"
  echo "cache per destination; HAProxy: server-side session reuse)."
} | tee "$HERE/RESULTS.md"
