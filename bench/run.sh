#!/usr/bin/env bash
# Benchmarks tandem's proxy pair against an HAProxy pair and a stunnel pair doing the
# same mTLS origination/termination (same ECDSA P-256 certificates, TLS 1.3,
# TLS_AES_128_GCM_SHA256, client certificates verified), plus the direct loopback
# baseline, in one run, alternating, medians of REPEATS (default 3).
#   bench/run.sh BUILD_DIR        (./dev bench)
#   bench/run.sh BUILD_DIR throughput   (./dev bench throughput: only the iperf3
#                 alternation, a few minutes, written to bench/THROUGHPUT.md)
# Environment: REPEATS (3), SECS per load step (4), HOLD idle connections held for the
# memory figure (10000), HOLD_STUNNEL (1000: stunnel runs a thread per connection),
# STUNNEL=0 to leave stunnel out, KEEP_BENCH_DIR=1 to keep configs and logs.
# ALTERNATIONS (5) rounds of TSECS (5) seconds for the iperf3 alternation.
# BASELINE_PROXY=PATH: another tandem-proxy binary (e.g. main's) measured as the pair
# "tandem-baseline" right after tandem in each repetition, before/after alternated,
# reported side by side. KINDS="tandem tandem-baseline" runs only those pairs (and
# skips the full-handshake pairs); RESULTS=FILE writes there instead.
# 127.0.0.1 only; every load loop is bounded in count and time. Writes bench/RESULTS.md.
set -euo pipefail
B="$(cd "${1:?usage: run.sh BUILD_DIR [throughput]}" && pwd)"
# "throughput": only the iperf3 alternation below (a few minutes), written to
# ${RESULTS:-bench/THROUGHPUT.md}; the full run includes it in RESULTS.md.
MODE="${2:-all}"
[[ $MODE == all || $MODE == throughput ]] || { echo "bench: unknown mode $MODE" >&2; exit 2; }
# The throughput alternation: ALTERNATIONS rounds of TSECS-second iperf3 runs.
ALTERNATIONS="${ALTERNATIONS:-5}"
TSECS="${TSECS:-5}"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
REPEATS="${REPEATS:-3}"
# The sections of RESULTS.md that other scripts write (bench/handshake.sh,
# bench/ca_load.sh), carried over to the new one as they were.
KEPT_SECTIONS="$(for s in handshake control-plane; do
  sed -n "/^<!-- $s/,/^<!-- \/$s -->/p" "${RESULTS:-$HERE/RESULTS.md}" 2>/dev/null; echo
done)"
SECS="${SECS:-4}"
HOLD="${HOLD:-10000}"
HOLD_STUNNEL="${HOLD_STUNNEL:-1000}"
LG="$B/bench/tandem-loadgen"
FLOOR="$B/bench/handshake_floor_benchmark"
DATA_FLOOR="$B/bench/data_path_floor_benchmark"
PROXY="$B/proxy/tandem-proxy"
for tool in haproxy iperf3 openssl curl ss "$LG" "$PROXY"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing"; exit 1; }
done
STUNNEL="${STUNNEL:-1}"
if [[ $STUNNEL == 1 ]] && ! command -v stunnel >/dev/null; then
  echo "bench: stunnel missing (apt-get install stunnel4): leaving it out" >&2
  STUNNEL=0
fi
W="$(mktemp -d /tmp/tandem-bench-XXXXXX)"
pids=()
PAIR_PIDS=()
cleanup() {
  for p in "${PAIR_PIDS[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ "${KEEP_BENCH_DIR:-0}" == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT
# Each proxy holds two sockets per connection: 10k held connections need > 20k fds.
# Raising the hard limit needs CAP_SYS_RESOURCE; without it HOLD shrinks to fit.
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS="$(ulimit -n)"
if ((FDS < 2 * HOLD + 1000)); then
  HOLD=$(((FDS - 1000) / 2))
  echo "bench: RLIMIT_NOFILE $FDS: holding $HOLD connections" >&2
fi
HAPROXY_MAXCONN=$(((FDS - 300) / 2))  # HAProxy refuses to start if 2*maxconn > fds

# --- certificates (openssl CLI: nothing of tandem's own code) ---
cd "$W"
bench_certificates

ECHO=27080 IPERF=27081
"$LG" echo $ECHO & pids+=($!)
iperf3 -s -p $IPERF >"$W/iperf.log" 2>&1 & pids+=($!)

wait_listen $ECHO
wait_listen $IPERF

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Pages only this process maps (anonymous memory, dirtied library pages): what one more
# sidecar costs when the libraries' clean pages are shared.
private_kb() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' "/proc/$1/smaps_rollup"; }
# Anonymous memory (heap, stacks): what stays of RSS once the file pages of the binary
# and its shared libraries, which the page cache shares among processes, are left out.
anon_kb() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }
# RSS with each shared page split among the processes that map it.
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
HZ="$(getconf CLK_TCK)"

# A proxy process plays one role: "out" takes plaintext on LISTEN and originates mTLS
# to TARGET; "in" terminates mTLS on LISTEN (client certificate required) and sends
# plaintext to TARGET. KIND: tandem, haproxy, haproxy-full (no session reuse, no
# tickets, no session cache: every handshake is a full one), haproxy-plain (a TCP relay
# without TLS: what two more processes on the path cost, the floor), tandem-plain
# (tandem's own pair relaying plaintext: its floor without TLS), stunnel.
# start_role KIND ROLE LISTEN TARGET  -> appends the pid to PAIR_PIDS, sets ROLE_PID.
start_role() {
  local kind="$1" role="$2" listen="$3" target="$4" name="$1-$2"
  case "$kind" in
    tandem | tandem-baseline | tandem-plain)
      local base=$((listen + 10)) who=client binary="$PROXY"
      [[ $kind == tandem-baseline ]] && binary="$BASELINE_PROXY"
      [[ $role == in ]] && who=server
      local route
      if [[ $role == out ]]; then
        route="\"outbound_address\": \"127.0.0.1:$listen\", \"inbound_address\": \"127.0.0.1:$base\", \"outbound_fixed_destination\": \"127.0.0.1:$target\""
        # tandem-plain: 127.0.0.1 is outside the mesh, so the out proxy relays plaintext.
        [[ $kind == tandem-plain ]] && route+=", \"mesh_cidrs\": [\"192.0.2.0/24\"]"
      else
        route="\"outbound_address\": \"127.0.0.1:$base\", \"inbound_address\": \"127.0.0.1:$listen\", \"inbound_fixed_app\": \"127.0.0.1:$target\""
        [[ $kind == tandem-plain ]] && route+=", \"default_inbound_mode\": \"PERMISSIVE\""
      fi
      cat >$name.json <<JSON
{$route, "metrics_address": "127.0.0.1:$((base + 1))",
 "admin_address": "127.0.0.1:$((base + 2))", "health_address": "127.0.0.1:$((base + 3))",
 "workers": 2, "socket_mark": 0, "max_connections": 60000,
 "cert_chain_file": "$W/$who.crt", "private_key_file": "$W/$who.key",
 "trust_bundle_file": "$W/ca.crt"}
JSON
      "$binary" --config=$name.json 2>>$name.log &
      ROLE_PID=$!
      METRICS[$role]=$((base + 1)) ;;
    haproxy | haproxy-full | haproxy-plain)
      local reuse="" bindopt="" cache="" client_tls="" server_tls=""
      if [[ $kind == haproxy-full ]]; then
        reuse=" no-ssl-reuse"
        bindopt=" no-tls-tickets"
        cache="  tune.ssl.cachesize 0"
      fi
      if [[ $kind != haproxy-plain ]]; then
        client_tls=" ssl crt $W/client.pem ca-file $W/ca.crt verify required$reuse"
        server_tls=" ssl crt $W/server.pem ca-file $W/ca.crt verify required$bindopt"
      fi
      {
        echo "global"
        echo "  nbthread 2"
        echo "  maxconn $HAPROXY_MAXCONN"
        echo "  ssl-default-bind-options ssl-min-ver TLSv1.3"
        echo "  ssl-default-server-options ssl-min-ver TLSv1.3"
        echo "  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256"
        echo "  ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256"
        [[ -n $cache ]] && echo "$cache"
        echo "defaults"
        echo "  mode tcp"
        echo "  maxconn $HAPROXY_MAXCONN"
        echo "  timeout connect 5s"
        echo "  timeout client 1h"
        echo "  timeout server 1h"
        if [[ $role == out ]]; then
          echo "listen out"
          echo "  bind 127.0.0.1:$listen"
          # No verifyhost: our SPIFFE certificates carry no DNS name; the chain is verified.
          echo "  server peer 127.0.0.1:$target$client_tls"
        else
          echo "listen in"
          echo "  bind 127.0.0.1:$listen$server_tls"
          echo "  server app 127.0.0.1:$target"
        fi
      } >$name.cfg
      haproxy -f $name.cfg -db 2>>$name.log &
      ROLE_PID=$! ;;
    stunnel)
      local who=client client=yes
      [[ $role == in ]] && who=server client=no
      cat >$name.conf <<CONF
foreground = yes
pid =
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[$role]
client = $client
accept = 127.0.0.1:$listen
connect = 127.0.0.1:$target
cert = $W/$who.crt
key = $W/$who.key
CAfile = $W/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
ciphersuites = TLS_AES_128_GCM_SHA256
CONF
      stunnel $name.conf 2>>$name.log &
      ROLE_PID=$! ;;
  esac
  PAIR_PIDS+=("$ROLE_PID")
  wait_listen "$listen" || { tail -5 "$name.log" >&2; exit 1; }
}

declare -A METRICS HELD HELD_N PER_CONN
# start_pair PAIR APP_PORT -> sets ENTRY, OUT_PID, IN_PID. PAIR is "direct", a KIND
# (both roles), or OUTKIND/INKIND.
start_pair() {
  local pair="$1" app="$2" out_kind in_kind
  PAIR_PIDS=()
  METRICS=()
  OUT_PID="" IN_PID=""
  if [[ $pair == direct ]]; then
    ENTRY=$app
    return
  fi
  if [[ $pair == */* ]]; then
    out_kind="${pair%/*}" in_kind="${pair#*/}"
  else
    out_kind="$pair" in_kind="$pair"
  fi
  ENTRY=27201
  start_role "$in_kind" in 27206 "$app"
  IN_PID=$ROLE_PID
  start_role "$out_kind" out 27201 27206
  OUT_PID=$ROLE_PID
  if [[ -n "${METRICS[in]:-}${METRICS[out]:-}" ]]; then  # tandem: wait for readiness
    for port in ${METRICS[in]:-} ${METRICS[out]:-}; do
      for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz/ready" >/dev/null && break
        sleep 0.05
      done
    done
  fi
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
  for _ in $(seq 100); do  # until the ports are free again
    [[ -z "$(ss -Hltn 'sport = :27201 or sport = :27206')" ]] && break
    sleep 0.05
  done
}
pair_ticks() { local t=0; for p in "${PAIR_PIDS[@]}"; do t=$((t + $(ticks "$p"))); done; echo $t; }
pair_rss() { local r=0; for p in "${PAIR_PIDS[@]}"; do r=$((r + $(rss_kb "$p"))); done; echo $r; }
pair_private() { local r=0; for p in "${PAIR_PIDS[@]}"; do r=$((r + $(private_kb "$p"))); done; echo $r; }
pair_anon() { local r=0; for p in "${PAIR_PIDS[@]}"; do r=$((r + $(anon_kb "$p"))); done; echo $r; }
pair_pss() { local r=0; for p in "${PAIR_PIDS[@]}"; do r=$((r + $(pss_kb "$p"))); done; echo $r; }
verdict() {  # verdict VALUE OP LIMIT
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= l) : (v + 0 <= l); print (ok ? "met" : "**not met**") }'
}
metric() {  # metric PORT NAME: the sum of NAME's samples on a tandem /metrics page
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}'
}
us_per() {  # us_per TICKS COUNT
  awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN {printf "%.0f", (n > 0 ? t / hz / n * 1e6 : 0)}'
}

# --- throughput by iperf3, alternated ---
# One iperf3 connection (client → out proxy → in proxy → server) through each pair in
# turn, ALTERNATIONS times; the order flips every round (tandem first, then HAProxy
# first) so a drift of the shared machine does not favour one pair. The paired ratio
# is tandem's Gb/s over HAProxy's in the same round, seconds apart.
# busy = share of all CPUs not idle during the run, from /proc/stat: at ~100% the
# pair's throughput is set by the CPU every process on the path (iperf3 included)
# spends per byte.
cpu_busy_idle() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
declare -A TP
iperf_through() {  # iperf_through KIND: appends gbps, cpu_gb, busy to TP[KIND,*]
  local kind="$1"
  start_pair "$kind" $IPERF
  local t0 t1 c0 c1 out gbps bytes
  t0=$(pair_ticks)
  c0="$(cpu_busy_idle)"
  out="$(timeout $((TSECS + 20)) iperf3 -c 127.0.0.1 -p $ENTRY -t "$TSECS" -J 2>/dev/null || echo '{}')"
  c1="$(cpu_busy_idle)"
  t1=$(pair_ticks)
  stop_pair
  gbps="$(grep -o '"bits_per_second":[[:space:]]*[0-9.e+]*' <<<"$out" | tail -1 | awk -F: '{printf "%.2f", $2/1e9}')"
  bytes="$(grep -o '"bytes":[[:space:]]*[0-9]*' <<<"$out" | tail -1 | cut -d: -f2 | tr -dc '0-9')"
  TP[$kind,gbps]+="${gbps:-0} "
  if [[ $kind != direct && "${bytes:-0}" -gt 0 ]]; then
    TP[$kind,cpu_gb]+="$(awk -v t=$((t1 - t0)) -v hz=$HZ -v b="$bytes" 'BEGIN {printf "%.2f", t/hz/(b/1e9)}') "
  fi
  TP[$kind,busy]+="$(awk -v a="$c0" -v b="$c1" 'BEGIN {split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", 100 * busy / (busy + idle)}') "
  if [[ "${bytes:-0}" -gt 0 ]]; then
    TP[$kind,machine_gb]+="$(awk -v a="$c0" -v b="$c1" -v hz=$HZ -v n="$bytes" 'BEGIN {
      split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / hz / (n / 1e9)}') "
  fi
}
TP_KINDS=(tandem haproxy tandem-plain haproxy-plain direct)
throughput_alternations() {
  TP_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
  local i kind order
  for i in $(seq 1 "$ALTERNATIONS"); do
    order=(tandem haproxy)
    ((i % 2 == 0)) && order=(haproxy tandem)
    for kind in "${order[@]}" tandem-plain haproxy-plain direct; do
      echo "bench: throughput alternation $i/$ALTERNATIONS, $kind" >&2
      iperf_through "$kind"
    done
  done
  TP_LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
  # The floor of the TLS work per byte, with tandem's BoringSSL, on this machine.
  declare -gA DF=()
  if [[ -x "$DATA_FLOOR" ]]; then
    local name cpu rate
    while IFS=, read -r name _ _ cpu _ rate _; do
      DF[${name//\"/}]="$cpu ${rate:-0}"
    done < <("$DATA_FLOOR" --benchmark_min_time=0.5 --benchmark_format=csv 2>/dev/null | grep '^"BM_')
  fi
}
tp_list() { tr ' ' '\n' <<<"${TP[$1]:-}" | sed '/^$/d'; }
throughput_report() {
  local ratios med lo hi
  ratios="$(paste -d' ' <(tp_list tandem,gbps) <(tp_list haproxy,gbps) |
    awk '$2 > 0 {printf "%.2f\n", $1 / $2}')"
  med="$(median <<<"$ratios")"
  lo="$(sort -g <<<"$ratios" | head -1)" hi="$(sort -g <<<"$ratios" | tail -1)"
  tp_med() { tp_list "$1" | median; }
  tp_all() { tp_list "$1" | paste -sd/ -; }
  echo "## Throughput by iperf3, alternated"
  echo
  echo "$ALTERNATIONS rounds; in each, one \`iperf3 -c 127.0.0.1 -p ENTRY -t $TSECS -J\` through"
  echo "tandem's pair and HAProxy's (order flipped every round), then each as a plain"
  echo "TCP relay pair (the floor: the same two relays without TLS) and direct. Load average"
  echo "(1/5/15 min) $TP_LOAD at the start, $TP_LOAD_END at the end."
  echo
  echo "| target | paired ratio, median (range) | rounds | verdict |"
  echo "|---|---|---|---|"
  echo "| throughput ≥1.5x HAProxy, iperf3 alternated | ${med}x (${lo}-${hi}x) | $(paste -sd/ - <<<"$ratios") | $(verdict "$med" ">=" 1.5) |"
  echo
  echo "| pair | Gb/s, median | Gb/s, each round | CPU-s per GB, both proxies, median | each round | CPU-s per GB, whole machine, median | CPUs busy, %, each round |"
  echo "|---|---|---|---|---|---|---|"
  for kind in "${TP_KINDS[@]}"; do
    echo "| $kind | $(tp_med $kind,gbps) | $(tp_all $kind,gbps) | $(tp_med $kind,cpu_gb) | $(tp_all $kind,cpu_gb) | $(tp_med $kind,machine_gb) | $(tp_all $kind,busy) |"
  done
  echo
  if [[ -n "${DF[BM_Aes128GcmSealRecord]:-}" ]]; then
    # s per GB = 1e9 / bytes per second
    local seal open copy sys plain
    seal="$(awk -v r="${DF[BM_Aes128GcmSealRecord]#* }" 'BEGIN {printf "%.3f", 1e9 / r}')"
    open="$(awk -v r="${DF[BM_Aes128GcmOpenRecord]#* }" 'BEGIN {printf "%.3f", 1e9 / r}')"
    copy="$(awk -v r="${DF[BM_Memcpy64KiB]#* }" 'BEGIN {printf "%.3f", 1e9 / r}')"
    sys="$(awk -v c="${DF[BM_NullSyscall]% *}" 'BEGIN {printf "%.0f", c}')"
    plain="$(tp_med tandem-plain,cpu_gb)"
    echo "Floor on this machine (\`$DATA_FLOOR\`, BoringSSL as tandem links it, one core):"
    echo "AES-128-GCM sealing of 16 KiB records $seal s per GB, opening $open s per GB;"
    echo "one user-space copy of 64 KiB $copy s per GB; a null system call $sys ns. A TLS"
    echo "pair must seal and open every byte once on top of relaying it, so its floor is"
    echo "tandem's plain relay pair plus both: $plain + $seal + $open = $(awk -v a="$plain" -v b="$seal" -v c="$open" 'BEGIN {printf "%.2f", a + b + c}') CPU-s per GB"
    echo "(tandem's TLS pair: $(tp_med tandem,cpu_gb); HAProxy's: $(tp_med haproxy,cpu_gb))."
    echo
  fi
  echo "Whole machine: every CPU's non-idle time from /proc/stat over the bytes iperf3"
  echo "moved (iperf3's own two ends, the kernel and anything else running included). When"
  echo "the CPUs are near 100% busy, a pair's throughput is about $(nproc) CPUs over that figure,"
  echo "so the ratio of two pairs' whole-machine CPU per GB bounds their throughput ratio."
  echo
}

# The cipher suite and group each pair's terminating side picks for a client that
# offers TLS 1.3 suites in BoringSSL's order (tandem's client; HAProxy's and stunnel's
# clients are configured to offer TLS_AES_128_GCM_SHA256 only).
declare -A NEGOTIATED
probe_tls() {
  NEGOTIATED[$1]="$(openssl s_client -connect 127.0.0.1:27206 -cert "$W/client.crt" \
    -key "$W/client.key" -CAfile "$W/ca.crt" -tls1_3 \
    -ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256 \
    </dev/null 2>&1 |
    awk '/^New, / {c = $NF} /Server Temp Key:/ {sub(/.*Temp Key: /, ""); sub(/,.*/, ""); g = $0}
         /Verify return code/ {v = $4} END {printf "%s, %s, verify %s", c, g, v}')"
}

BASELINE_PROXY="${BASELINE_PROXY:-}"
if [[ -n "${KINDS:-}" ]]; then
  read -ra KINDS <<<"$KINDS"
  FULL_PAIRS=()
else
  KINDS=(direct tandem)
  [[ -n $BASELINE_PROXY ]] && KINDS+=(tandem-baseline)
  KINDS+=(haproxy haproxy-plain)
  [[ $STUNNEL == 1 ]] && KINDS+=(stunnel)
  FULL_PAIRS=(haproxy-full tandem/haproxy-full haproxy-full/tandem)
fi
if [[ $MODE == throughput ]]; then
  throughput_alternations
  throughput_report | tee "${RESULTS:-$HERE/THROUGHPUT.md}"
  exit 0
fi
for rep in $(seq 1 "$REPEATS"); do
  for kind in "${KINDS[@]}"; do
    echo "bench: repetition $rep/$REPEATS, $kind" >&2
    # 1. one-connection bulk throughput, and the proxies' CPU per GB
    start_pair $kind $IPERF
    t0=$(pair_ticks)
    out="$(timeout $((SECS + 20)) iperf3 -c 127.0.0.1 -p $ENTRY -t "$SECS" -J 2>/dev/null || echo '{}')"
    t1=$(pair_ticks)
    gbps="$(grep -o '"bits_per_second":[[:space:]]*[0-9.e+]*' <<<"$out" | tail -1 | awk -F: '{printf "%.2f", $2/1e9}')"
    bytes="$(grep -o '"bytes":[[:space:]]*[0-9]*' <<<"$out" | tail -1 | cut -d: -f2 | tr -dc '0-9')"
    add $kind,gbps "${gbps:-0}"
    if [[ $kind != direct && "${bytes:-0}" -gt 0 ]]; then
      add $kind,cpu_gb "$(awk -v t=$((t1 - t0)) -v hz=$HZ -v b="$bytes" 'BEGIN {printf "%.2f", t/hz/(b/1e9)}')"
    fi
    stop_pair
    # 2-5 against the echo backend
    start_pair $kind $ECHO
    if [[ $kind != direct && $kind != haproxy-plain ]]; then
      add $kind,rss_idle "$(($(pair_rss) / 2))"
      add $kind,private_idle "$(($(pair_private) / 2))"
      add $kind,anon_idle "$(($(pair_anon) / 2))"
      add $kind,pss_idle "$(($(pair_pss) / 2))"
      [[ $rep == 1 ]] && probe_tls $kind
    fi
    # 2. added latency, persistent connections, fixed rate
    lat="$("$LG" latency $ENTRY "$SECS" 8 2000)"
    add $kind,p50 "$(field p50_us <<<"$lat")"
    add $kind,p99 "$(field p99_us <<<"$lat")"
    add $kind,lfail "$(field failed <<<"$lat")"
    if [[ $kind == haproxy-plain ]]; then  # the floor needs only 1 and 2
      stop_pair
      continue
    fi
    # 3/4. a new connection per request, with each proxy's default session resumption
    o0=0 i0=0 r0=0 n0=0
    if [[ $kind != direct ]]; then
      o0=$(ticks $OUT_PID) i0=$(ticks $IN_PID)
      if [[ $kind == tandem ]]; then
        r0=$(metric ${METRICS[out]} tandem_proxy_tls_resumed_total)
        n0=$(metric ${METRICS[out]} tandem_proxy_connections_opened_total)
      fi
    fi
    cr="$("$LG" connrate $ENTRY "$SECS" 8)"
    cps="$(field conns_per_s <<<"$cr")"
    add $kind,cps "$cps"
    add $kind,cfail "$(field failed <<<"$cr")"
    if [[ $kind != direct ]]; then
      n=$(awk -v c="$cps" -v s="$SECS" 'BEGIN {printf "%d", c * s}')
      add $kind,cpu_out "$(us_per $(($(ticks $OUT_PID) - o0)) $n)"
      add $kind,cpu_in "$(us_per $(($(ticks $IN_PID) - i0)) $n)"
      if [[ $kind == tandem ]]; then
        r1=$(metric ${METRICS[out]} tandem_proxy_tls_resumed_total)
        n1=$(metric ${METRICS[out]} tandem_proxy_connections_opened_total)
        add tandem,resumed_pct "$(awk -v r=$((r1 - r0)) -v n=$((n1 - n0)) 'BEGIN {printf "%.0f", (n > 0 ? 100 * r / n : 0)}')"
      fi
    fi
    # 5. memory: idle connections held (first repetition; RSS is not CPU-noise bound)
    if [[ $kind != direct && $rep == 1 ]]; then
      count=$HOLD
      [[ $kind == stunnel ]] && count=$HOLD_STUNNEL
      HELD_N[$kind]=$count
      r0=$(pair_rss)
      "$LG" hold $ENTRY "$count" 3 8 >"$W/hold.out" &
      hold_pid=$!
      for _ in $(seq 1200); do  # until every connection is up (bounded: 60 s)
        grep -q held= "$W/hold.out" 2>/dev/null && break
        sleep 0.05
      done
      sleep 0.5
      r1=$(pair_rss)
      wait $hold_pid || true
      held="$(field held <"$W/hold.out")"
      HELD[$kind]="${held:-0}"
      PER_CONN[$kind]="$(awk -v a=$r0 -v b=$r1 -v n="${held:-0}" 'BEGIN {printf (n > 0 ? "%.1f" : "n/a"), (b-a)/(n>0?n:1)/2}')"
    fi
    stop_pair
  done
  # 3b. full handshakes only. tandem always resumes when it can, so its two sides are
  # measured against an HAProxy peer that issues no tickets / offers no session.
  for pair in "${FULL_PAIRS[@]}"; do
    echo "bench: repetition $rep/$REPEATS, full handshakes, $pair" >&2
    start_pair $pair $ECHO
    o0=$(ticks $OUT_PID) i0=$(ticks $IN_PID)
    [[ $pair == tandem/* ]] && r0=$(metric ${METRICS[out]} tandem_proxy_tls_resumed_total)
    cr="$("$LG" connrate $ENTRY "$SECS" 8)"
    cps="$(field conns_per_s <<<"$cr")"
    n=$(awk -v c="$cps" -v s="$SECS" 'BEGIN {printf "%d", c * s}')
    add $pair,cps "$cps"
    add $pair,cfail "$(field failed <<<"$cr")"
    add $pair,cpu_out "$(us_per $(($(ticks $OUT_PID) - o0)) $n)"
    add $pair,cpu_in "$(us_per $(($(ticks $IN_PID) - i0)) $n)"
    if [[ $pair == tandem/* ]]; then
      r1=$(metric ${METRICS[out]} tandem_proxy_tls_resumed_total)
      add $pair,resumed "$((r1 - r0))"
    fi
    stop_pair
  done
done

throughput_alternations

# --- crypto floor of one handshake ---
FLOOR_NOTE=""
declare -A FL
if [[ -x "$FLOOR" ]]; then
  TANDEM_BENCH_CERTS="$W" "$FLOOR" --benchmark_min_time=0.5 --benchmark_format=csv \
    2>/dev/null >floor.csv || true
  while IFS=, read -r name _ _ cpu _; do
    name="${name//\"/}"
    FL[$name]="$(awk -v c="$cpu" 'BEGIN {printf "%.0f", c / 1000}')"
  done < <(grep '^"BM_' floor.csv)
  FLOOR_NOTE="\`TANDEM_BENCH_CERTS=DIR $FLOOR\` (BoringSSL as linked into tandem)"
fi
speed="$(openssl speed -seconds 1 ecdsap256 ecdhx25519 ecdhp256 2>/dev/null)"
ossl_sign="$(awk '/ecdsa \(nistp256\)/ {printf "%.0f", 1e6 / $(NF-1)}' <<<"$speed")"
ossl_verify="$(awk '/ecdsa \(nistp256\)/ {printf "%.0f", 1e6 / $NF}' <<<"$speed")"
ossl_x25519="$(awk '/ecdh \(X25519\)/ {printf "%.0f", 1e6 / $NF}' <<<"$speed")"
ossl_p256dh="$(awk '/ecdh \(nistp256\)/ {printf "%.0f", 1e6 / $NF}' <<<"$speed")"

# --- report ---
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf ((b + 0 > 0 && a + 0 > 0) ? "%.2fx" : "n/a"), a/b}'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", a + b}'; }
direct_p50="$(m direct,p50)"
added() { awk -v a="$1" -v d="$direct_p50" 'BEGIN {printf "%.1f", a - d}'; }
cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
t_gbps="$(m tandem,gbps)" h_gbps="$(m haproxy,gbps)"
r_gbps="$(ratio "$t_gbps" "$h_gbps")"
t_add="$(added "$(m tandem,p50)")" h_add="$(added "$(m haproxy,p50)")"
r_add="$(ratio "$t_add" "$h_add")"
floor_add="$(added "$(m haproxy-plain,p50)")"
r_cps="$(ratio "$(m tandem,cps)" "$(m haproxy,cps)")"
# Paired: the median over repetitions of tandem's figure over HAProxy's in the same
# repetition, which ran seconds apart. The shared machine drifts between repetitions
# (rep. 1 can be 30% faster than rep. 3 for every pair); a ratio of two medians can
# pair one pair's fast repetition with the other's slow one.
paired() {  # paired KEY [added]: median of tandem_i / haproxy_i (minus direct_i if added)
  paste -d' ' <(tr ' ' '\n' <<<"${R[tandem,$1]:-}" | sed '/^$/d') \
    <(tr ' ' '\n' <<<"${R[haproxy,$1]:-}" | sed '/^$/d') \
    <(tr ' ' '\n' <<<"${R[direct,$1]:-}" | sed '/^$/d') |
    awk -v added="${2:-}" '{d = (added ? $3 : 0); if ($2 - d > 0) print ($1 - d) / ($2 - d)}' |
    median | awk '{printf ($1 == "n/a" ? "n/a" : "%.2fx"), $1}'
}
p_gbps="$(paired gbps)" p_add="$(paired p50 added)" p_cps="$(paired cps)"
t_full_out="$(m tandem/haproxy-full,cpu_out)" t_full_in="$(m haproxy-full/tandem,cpu_in)"
t_full="$(sum "$t_full_out" "$t_full_in")"
h_full="$(sum "$(m haproxy-full,cpu_out)" "$(m haproxy-full,cpu_in)")"
t_res="$(sum "$(m tandem,cpu_out)" "$(m tandem,cpu_in)")"
h_res="$(sum "$(m haproxy,cpu_out)" "$(m haproxy,cpu_in)")"
idle_kb="$(m tandem,rss_idle)"
row() {  # row LABEL KEY [unit-free]: direct, tandem, HAProxy, stunnel medians
  local s="—"
  [[ $STUNNEL == 1 ]] && s="$(m stunnel,$2)"
  local d="—"
  [[ -n "${R[direct,$2]:-}" ]] && d="$(m direct,$2)"
  echo "| $1 | $d | $(m tandem,$2) | $(m haproxy,$2) | $s |"
}
{
  echo "# Benchmark results"
  echo
  echo "Run: \`./dev bench\` (\`bench/run.sh BUILD_DIR\`), $(date -u '+%F %H:%M UTC'), $(nproc) cores"
  echo "($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)."
  echo "HAProxy $(haproxy -v | head -1 | awk '{print $3}'), stunnel $(stunnel -version 2>&1 | awk '/^stunnel/ {print $2; exit}'), iperf3 $(iperf3 --version | awk 'NR==1 {print $2}'), $(openssl version | awk '{print $1, $2}')."
  echo
  echo "Method: medians of $REPEATS repetitions; within a repetition the pairs run one"
  echo "after the other (direct, tandem, HAProxy, stunnel, then the full-handshake pairs),"
  echo "so slow drifts of the shared machine hit all of them alike. Every load step runs"
  echo "${SECS}s on 127.0.0.1. Each pair is two processes, the originating (\"out\") and the"
  echo "terminating (\"in\") proxy, 2 worker threads each (tandem \`workers: 2\`, HAProxy"
  echo "\`nbthread 2\`; stunnel: a thread per connection). All use TLS 1.3 with"
  echo "TLS_AES_128_GCM_SHA256, the same ECDSA P-256 CA and leaf certificates"
  echo "(URI SANs spiffe://cluster.local/ns/bench/sa/client and .../server, made with the"
  echo "openssl CLI), and verify the client certificate on the terminating side."
  echo "The machine is shared with other engineers' builds: numbers are noisy, treat"
  echo "differences under ~10-15% as noise; every repetition's value is in the detail"
  echo "table below."
  echo
  echo "Negotiated on the terminating side by \`openssl s_client -tls1_3\` with the client"
  echo "certificate, offering suites in BoringSSL's order (AES-128-GCM first, as tandem's client does):"
  echo " tandem: ${NEGOTIATED[tandem]:-?}; HAProxy: ${NEGOTIATED[haproxy]:-?}$([[ $STUNNEL == 1 ]] && echo "; stunnel: ${NEGOTIATED[stunnel]:-?}")."
  echo
  echo "## Against the targets"
  echo
  echo "Verdicts use the paired ratio: the median over repetitions of tandem's figure over"
  echo "HAProxy's in the same repetition (they ran seconds apart; the machine drifts more"
  echo "between repetitions). The ratio of the two medians is shown beside it."
  echo
  echo "| target | tandem | HAProxy | paired ratio (ratio of medians) | verdict |"
  echo "|---|---|---|---|---|"
  echo "| throughput ≥1.5x HAProxy (1 conn, Gb/s) | $t_gbps | $h_gbps | $p_gbps ($r_gbps) | $(verdict "${p_gbps%x}" ">=" 1.5) |"
  echo "| added p50 latency ≤0.5x HAProxy (µs over direct $direct_p50) | $t_add | $h_add | $p_add ($r_add) | $(verdict "${p_add%x}" "<=" 0.5) |"
  echo "| (floor) added p50 of a plain TCP relay pair, HAProxy without TLS, µs | $floor_add | | tandem $(ratio "$t_add" "$floor_add") of the floor | — |"
  echo "| new connections/s ≥2x HAProxy (each with its default resumption) | $(m tandem,cps) | $(m haproxy,cps) | $p_cps ($r_cps) | $(verdict "${p_cps%x}" ">=" 2) |"
  echo "| CPU per full mTLS handshake, both sides, µs (lower is better) | $t_full | $h_full | $(ratio "$t_full" "$h_full") | — |"
  echo "| idle RSS ≤8 MB per proxy process, KB | $idle_kb | $(m haproxy,rss_idle) | | $(verdict "$idle_kb" "<=" 8192) |"
  echo "| ≤16 KB per idle mTLS connection per proxy, KB | ${PER_CONN[tandem]:-n/a} | ${PER_CONN[haproxy]:-n/a} | | $(verdict "${PER_CONN[tandem]:-n/a}" "<=" 16) |"
  echo
  throughput_report
  echo "## All figures (medians)"
  echo
  echo "| scenario | direct | tandem | HAProxy | stunnel |"
  echo "|---|---|---|---|---|"
  row "1. one-connection bulk throughput, Gb/s" gbps
  row "1. CPU-seconds per GB, both proxies together" cpu_gb
  row "2. p50 latency @2000 req/s on 8 persistent conns, µs" p50
  row "2. p99 latency, same, µs" p99
  row "2. failed persistent connections" lfail
  row "3/4. new connections/s, 8 clients, default resumption" cps
  row "3/4. failed connections" cfail
  row "3/4. CPU µs per connection, originating proxy" cpu_out
  row "3/4. CPU µs per connection, terminating proxy" cpu_in
  echo "| 3/4. share of tandem's connections resumed, % | — | $(m tandem,resumed_pct) | — | — |"
  row "5. RSS per proxy process at idle, KB" rss_idle
  row "5. of which private to the process (Private_Clean+Private_Dirty), KB" private_idle
  row "5. of which anonymous (RssAnon: heap, stacks; the rest are file pages), KB" anon_idle
  row "5. PSS at idle (shared pages split among the processes mapping them), KB" pss_idle
  echo "| 1/2. HAProxy as a plain TCP relay pair (no TLS), the floor: Gb/s; p50, p99 µs | — | — | $(m haproxy-plain,gbps); $(m haproxy-plain,p50), $(m haproxy-plain,p99) | — |"
  echo "| 5. RSS per idle connection per proxy, KB (connections held) | — | ${PER_CONN[tandem]:-n/a} (${HELD[tandem]:-0}/${HELD_N[tandem]:-0}) | ${PER_CONN[haproxy]:-n/a} (${HELD[haproxy]:-0}/${HELD_N[haproxy]:-0}) | ${PER_CONN[stunnel]:-n/a} (${HELD[stunnel]:-0}/${HELD_N[stunnel]:-0}) |"
  echo
  echo "Full handshakes only (3). tandem has no switch to turn its client ticket cache off,"
  echo "so each tandem side is measured against an HAProxy peer that neither offers a"
  echo "session (\`no-ssl-reuse\`) nor issues tickets (\`no-tls-tickets\`, \`tune.ssl.cachesize 0\`):"
  echo
  echo "| pair (out → in), full handshakes | conns/s | failed | CPU µs/conn out | CPU µs/conn in |"
  echo "|---|---|---|---|---|"
  for pair in "${FULL_PAIRS[@]}"; do
    label="${pair/haproxy-full/HAProxy}"
    label="${label/haproxy-full/HAProxy}"
    [[ $label == HAProxy ]] && label="HAProxy → HAProxy"
    label="${label/\// → }"
    echo "| $label | $(m $pair,cps) | $(m $pair,cfail) | $(m $pair,cpu_out) | $(m $pair,cpu_in) |"
  done
  echo
  echo "tandem's outbound side resumed $(m tandem/haproxy-full,resumed) sessions against the ticket-less peer (0 expected)."
  echo
  echo "## Crypto floor of one handshake"
  echo
  echo "Per side, a TLS 1.3 mTLS handshake must: sign its CertificateVerify (ECDSA P-256),"
  echo "verify the peer's CertificateVerify and the peer leaf's CA signature (2 verifies),"
  echo "and make one X25519 key pair and agreement."
  echo
  echo "| operation | BoringSSL (tandem's), µs | OpenSSL 3 (\`openssl speed\`), µs |"
  echo "|---|---|---|"
  echo "| ECDSA P-256 sign | ${FL[BM_EcdsaP256Sign]:-n/a} | $ossl_sign |"
  echo "| ECDSA P-256 verify | ${FL[BM_EcdsaP256Verify]:-n/a} | $ossl_verify |"
  echo "| X25519 key pair + agreement | ${FL[BM_X25519KeygenAndAgree]:-n/a} | ~$((2 * ${ossl_x25519:-0})) (2 × one op) |"
  echo "| (alternative group) P-256 ECDHE key pair + agreement | ${FL[BM_EcdhP256KeygenAndAgree]:-n/a} | ~$((2 * ${ossl_p256dh:-0})) (2 × one op) |"
  echo "| public-key floor, one side (1 sign + 2 verify + X25519) | ${FL[BM_PublicKeyFloorPerSide]:-n/a} | |"
  echo "| complete in-memory mTLS handshake, both sides, full | ${FL[BM_MtlsHandshakeFullBothSides]:-n/a} | |"
  echo "| complete in-memory mTLS handshake, both sides, resumed | ${FL[BM_MtlsHandshakeResumedBothSides]:-n/a} | |"
  echo
  if [[ -n "${FL[BM_PublicKeyFloorPerSide]:-}" && $t_full -gt 0 ]]; then
    echo "tandem spends $t_full µs of CPU per full handshake on both sides together (connect,"
    echo "accept, both TCP legs, the 64-byte echo and close included): $(ratio "$t_full" "$((2 * FL[BM_PublicKeyFloorPerSide]))") the public-key floor"
    echo "($((2 * FL[BM_PublicKeyFloorPerSide])) µs) and $(ratio "$t_full" "${FL[BM_MtlsHandshakeFullBothSides]}") an in-memory BoringSSL handshake (${FL[BM_MtlsHandshakeFullBothSides]} µs). HAProxy: $h_full µs,"
    echo "$(ratio "$h_full" "$((2 * FL[BM_PublicKeyFloorPerSide]))") the floor."
  fi
  echo
  echo "## Commands"
  echo
  echo "- 1: \`iperf3 -s -p $IPERF\`; \`iperf3 -c 127.0.0.1 -p ENTRY -t $SECS -J\` (last \`bits_per_second\`"
  echo "  and \`bytes\`); CPU = utime+stime of both proxies from /proc/PID/stat before/after."
  echo "- 2: \`tandem-loadgen echo $ECHO\` (backend); \`tandem-loadgen latency ENTRY $SECS 8 2000\`."
  echo "  Added latency = pair p50 − direct p50."
  echo "- 3/4: \`tandem-loadgen connrate ENTRY $SECS 8\` (connect, 64-byte echo, close; 8 threads);"
  echo "  CPU per connection = each proxy's utime+stime delta / connections; tandem's"
  echo "  resumed share from \`tandem_proxy_tls_resumed_total\` and"
  echo "  \`tandem_proxy_connections_opened_total\` on the originating proxy's /metrics."
  echo "- 5: VmRSS and RssAnon from /proc/PID/status (private and Pss: /proc/PID/smaps_rollup; both"
  echo "  processes of the pair running) at idle, and before/after"
  echo "  \`tandem-loadgen hold ENTRY N 3 8\` (N connections, one echo each, held 3 s);"
  echo "  per connection = RSS growth of both proxies / N / 2."
  echo "- Crypto floor: ${FLOOR_NOTE:-handshake_floor_benchmark not built}; \`openssl speed -seconds 1 ecdsap256 ecdhx25519 ecdhp256\`."
  echo "- TLS parameters: \`openssl s_client -connect 127.0.0.1:IN -cert client.crt -key client.key -CAfile ca.crt -tls1_3\`."
  echo "- Proxy configs: tandem JSON \`{outbound_address|inbound_address, outbound_fixed_destination|inbound_fixed_app, workers: 2, socket_mark: 0, max_connections: 60000, cert_chain_file, private_key_file, trust_bundle_file}\`;"
  echo "  HAProxy \`listen\` sections (\`bind ... ssl crt ca-file verify required\` / \`server ... ssl crt ca-file verify required\`), \`KEEP_BENCH_DIR=1\` keeps them."
  echo
  echo "## Every repetition"
  echo
  echo "| figure | direct | tandem | HAProxy | stunnel |"
  echo "|---|---|---|---|---|"
  for key in gbps cpu_gb p50 p99 cps cpu_out cpu_in rss_idle private_idle anon_idle pss_idle; do
    echo "| $key | $(all direct,$key) | $(all tandem,$key) | $(all haproxy,$key) | $(all stunnel,$key) |"
  done
  echo "| plain TCP relay pair: gbps; p50; p99 | | | $(all haproxy-plain,gbps); $(all haproxy-plain,p50); $(all haproxy-plain,p99) | |"
  for pair in "${FULL_PAIRS[@]}"; do
    echo "| full handshakes $pair: cps, cpu_out, cpu_in | | $(all $pair,cps); $(all $pair,cpu_out); $(all $pair,cpu_in) | | |"
  done
  if [[ -n $BASELINE_PROXY ]]; then
    echo
    echo "## tandem against the baseline binary"
    echo
    echo "\`BASELINE_PROXY=$BASELINE_PROXY\`: medians, then every repetition's value (the two"
    echo "pairs ran one after the other in each repetition)."
    echo
    echo "| figure | tandem | baseline | tandem, each | baseline, each |"
    echo "|---|---|---|---|---|"
    for f in gbps:"throughput, Gb/s" p50:"p50 latency, µs" p99:"p99 latency, µs" \
      cps:"new connections/s" cpu_out:"CPU per connection, out side, µs" \
      cpu_in:"CPU per connection, in side, µs" cpu_gb:"CPU-s per GB" rss_idle:"idle RSS, KB"; do
      k="${f%%:*}"
      echo "| ${f#*:} | $(m tandem,$k) | $(m tandem-baseline,$k) | $(all tandem,$k) | $(all tandem-baseline,$k) |"
    done
  fi
} | tee "${RESULTS:-$HERE/RESULTS.md}"
if [[ -n ${KEPT_SECTIONS//[[:space:]]/} ]]; then
  printf '\n%s\n' "$KEPT_SECTIONS" >> "${RESULTS:-$HERE/RESULTS.md}"
fi
