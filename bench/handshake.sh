#!/usr/bin/env bash
# CPU per full mTLS handshake of tandem-proxy (both sides together) against an in-memory
# BoringSSL handshake (bench/handshake_floor_benchmark), measured in the same run,
# alternating, medians of REPEATS (default 5). bench/run.sh's full-handshake pairs, alone:
#   bench/handshake.sh BUILD_DIR
# tandem's originating side is measured against an HAProxy terminating side that issues
# no tickets, its terminating side against an HAProxy originating side that offers no
# session, so every handshake is a full one (tandem's client keeps tickets and has no
# switch to stop). Each tandem side's CPU (utime+stime from /proc/PID/stat) over the
# connections `tandem-loadgen connrate` completed (connect, 64-byte echo, close), summed;
# the ratio is taken within each repetition, then the median.
# Writes its section of bench/RESULTS.md (RESULTS=FILE: there), between
# "<!-- handshake" and "<!-- /handshake -->", and prints it.
# Environment: REPEATS (5), SECS per load step (4), BASELINE_PROXY=PATH (another
# tandem-proxy, e.g. main's, measured the same way right after tandem in each
# repetition), PERF_DIR=DIR (after measuring, profile each binary's sides under the
# same load with `perf record $PERF_OPTS` into DIR, `perf report` in DIR/*.txt, and add
# the share of each category of work, bench/perf_categories.py; PERF_OPTS defaults to
# "--call-graph dwarf,16384 -F 999": BoringSSL has no frame pointers), KEEP_BENCH_DIR=1.
# 127.0.0.1 only; every load loop is bounded in count and time.
set -euo pipefail
B="$(cd "${1:?usage: handshake.sh BUILD_DIR}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
REPEATS="${REPEATS:-5}"
SECS="${SECS:-4}"
LG="$B/bench/tandem-loadgen"
FLOOR="$B/bench/handshake_floor_benchmark"
PROXY="$B/proxy/tandem-proxy"
BASELINE_PROXY="${BASELINE_PROXY:-}"
PERF_DIR="${PERF_DIR:-}"
for tool in haproxy openssl curl ss "$LG" "$FLOOR" "$PROXY" ${BASELINE_PROXY:+"$BASELINE_PROXY"} \
  ${PERF_DIR:+perf}; do
  command -v "$tool" >/dev/null || { echo "handshake.sh: $tool missing"; exit 1; }
done
W="$(mktemp -d /tmp/tandem-handshake-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ "${KEEP_BENCH_DIR:-0}" == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

cd "$W"
bench_certificates

ECHO=27300 OUT=27311 IN=27316  # apart from bench/run.sh's ports
"$LG" echo $ECHO & pids+=($!)
wait_listen $ECHO

# start_tandem BINARY ROLE LISTEN TARGET -> PID
start_tandem() {
  local binary="$1" role="$2" listen="$3" target="$4" base=$(($3 + 10)) who=client route
  [[ $role == in ]] && who=server
  if [[ $role == out ]]; then
    route="\"outbound_address\": \"127.0.0.1:$listen\", \"inbound_address\": \"127.0.0.1:$base\", \"outbound_fixed_destination\": \"127.0.0.1:$target\""
  else
    route="\"outbound_address\": \"127.0.0.1:$base\", \"inbound_address\": \"127.0.0.1:$listen\", \"inbound_fixed_app\": \"127.0.0.1:$target\""
  fi
  cat >tandem-$role.json <<JSON
{$route, "metrics_address": "127.0.0.1:$((base + 1))",
 "admin_address": "127.0.0.1:$((base + 2))", "health_address": "127.0.0.1:$((base + 3))",
 "workers": 2, "socket_mark": 0, "max_connections": 60000,
 "cert_chain_file": "$W/$who.crt", "private_key_file": "$W/$who.key",
 "trust_bundle_file": "$W/ca.crt"}
JSON
  "$binary" --config=tandem-$role.json 2>>tandem-$role.log &
  PID=$!
  pids+=($PID)
  wait_listen "$listen" || { tail -5 tandem-$role.log >&2; exit 1; }
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$((base + 1))/healthz/ready" >/dev/null && return 0
    sleep 0.05
  done
  echo "handshake.sh: tandem $role not ready" >&2
  exit 1
}
# start_haproxy ROLE LISTEN TARGET -> PID: no session offered, no tickets, no cache.
start_haproxy() {
  local role="$1" listen="$2" target="$3"
  {
    echo "global"
    echo "  nbthread 2"
    echo "  ssl-default-bind-options ssl-min-ver TLSv1.3"
    echo "  ssl-default-server-options ssl-min-ver TLSv1.3"
    echo "  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256"
    echo "  ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256"
    echo "  tune.ssl.cachesize 0"
    echo "defaults"
    echo "  mode tcp"
    echo "  timeout connect 5s"
    echo "  timeout client 1h"
    echo "  timeout server 1h"
    if [[ $role == out ]]; then
      echo "listen out"
      echo "  bind 127.0.0.1:$listen"
      echo "  server peer 127.0.0.1:$target ssl crt $W/client.pem ca-file $W/ca.crt verify required no-ssl-reuse"
    else
      echo "listen in"
      echo "  bind 127.0.0.1:$listen ssl crt $W/server.pem ca-file $W/ca.crt verify required no-tls-tickets"
      echo "  server app 127.0.0.1:$target"
    fi
  } >haproxy-$role.cfg
  haproxy -f haproxy-$role.cfg -db 2>>haproxy-$role.log &
  PID=$!
  pids+=($PID)
  wait_listen "$listen" || { tail -5 haproxy-$role.log >&2; exit 1; }
}
stop() {  # stop PID...: TERM, bounded wait, KILL
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for _ in $(seq 100); do
    [[ -z "$(ss -Hltn "sport = :$OUT or sport = :$IN")" ]] && break
    sleep 0.05
  done
}
HZ="$(getconf CLK_TCK)"

# side BINARY ROLE [PERF_FILE] -> US: CPU µs per connection of tandem's ROLE side, with
# HAProxy on the other side; with PERF_FILE, a perf profile of that side instead.
side() {
  local binary="$1" role="$2" perf_file="${3:-}" t_pid h_pid
  if [[ $role == out ]]; then
    start_haproxy in $IN $ECHO; h_pid=$PID
    start_tandem "$binary" out $OUT $IN; t_pid=$PID
  else
    start_tandem "$binary" in $IN $ECHO; t_pid=$PID
    start_haproxy out $OUT $IN; h_pid=$PID
  fi
  if [[ -n $perf_file ]]; then
    perf record -q -e cpu-clock ${PERF_OPTS:---call-graph dwarf,16384 -F 999} -p "$t_pid" -o "$perf_file" -- sleep "$SECS" \
      2>/dev/null &
    local perf_pid=$!
    "$LG" connrate $OUT "$SECS" 8 >/dev/null
    wait $perf_pid || true
  else
    local t0 cr n
    t0=$(ticks "$t_pid")
    cr="$("$LG" connrate $OUT "$SECS" 8)"
    n=$(awk -v c="$(field conns_per_s <<<"$cr")" -v s="$SECS" 'BEGIN {printf "%d", c * s}')
    [[ "$(field failed <<<"$cr")" == 0 ]] || echo "handshake.sh: $role: $cr" >&2
    US="$(awk -v t=$(($(ticks "$t_pid") - t0)) -v hz="$HZ" -v n="$n" \
      'BEGIN {printf "%.0f", (n > 0 ? t / hz / n * 1e6 : 0)}')"
  fi
  stop "$t_pid" "$h_pid"
}

floor_us() {  # an in-memory full mTLS handshake, both sides, CPU µs
  TANDEM_BENCH_CERTS="$W" "$FLOOR" --benchmark_filter='^BM_MtlsHandshakeFullBothSides$' \
    --benchmark_min_time=1 --benchmark_format=csv 2>/dev/null |
    awk -F, '/^"BM_/ {printf "%.0f", $4 / 1000}'
}

STARTED="$(date -u '+%F %H:%M UTC')"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
NICENESS="$(nice)"
binaries=(tandem)
[[ -n $BASELINE_PROXY ]] && binaries+=(baseline)
for rep in $(seq 1 "$REPEATS"); do
  for b in "${binaries[@]}"; do
    bin="$PROXY"
    [[ $b == baseline ]] && bin="$BASELINE_PROXY"
    echo "handshake.sh: repetition $rep/$REPEATS, $b" >&2
    side "$bin" out
    out_us=$US
    side "$bin" in
    in_us=$US
    add $b,out "$out_us"
    add $b,in "$in_us"
    add $b,sum $((out_us + in_us))
  done
  f="$(floor_us)"
  add floor "$f"
  for b in "${binaries[@]}"; do
    last="$(tr ' ' '\n' <<<"${R[$b,sum]}" | sed '/^$/d' | tail -1)"
    add $b,ratio "$(awk -v a="$last" -v f="$f" 'BEGIN {printf "%.2f", a / f}')"
  done
done


# Profiles after the measurement, so perf's overhead is in none of the figures above.
declare -A SCRIPT
if [[ -n $PERF_DIR ]]; then
  mkdir -p "$PERF_DIR"
  for b in "${binaries[@]}"; do
    bin="$PROXY"
    [[ $b == baseline ]] && bin="$BASELINE_PROXY"
    for role in out in; do
      echo "handshake.sh: perf profile, $b, $role side" >&2
      side "$bin" $role "$PERF_DIR/$b-$role.data"
      perf script -i "$PERF_DIR/$b-$role.data" -F ip,sym,dso,period 2>/dev/null \
        >"$PERF_DIR/$b-$role.script" || true
      perf report -i "$PERF_DIR/$b-$role.data" --no-children --sort dso,symbol --stdio \
        -g none 2>/dev/null >"$PERF_DIR/$b-$role.txt" || true
      SCRIPT[$b,$role]="$PERF_DIR/$b-$role.script"
    done
  done
fi

report() {
  echo "<!-- handshake: written by bench/handshake.sh; bench/run.sh keeps it -->"
  echo "## CPU per full handshake against the in-memory floor (bench/handshake.sh)"
  echo
  echo "Run: \`$(printf '%s' "${BASELINE_PROXY:+BASELINE_PROXY=$BASELINE_PROXY }${PERF_DIR:+PERF_DIR=DIR }REPEATS=$REPEATS bench/handshake.sh BUILD_DIR")\`"
  echo "(niceness $NICENESS), $STARTED to $(date -u '+%H:%M UTC'), load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after."
  echo "Each tandem side against a ticket-less HAProxy (every handshake full), \`tandem-loadgen connrate\`"
  echo "for ${SECS}s (connect, 64-byte echo, close); CPU = the tandem process's utime+stime over the"
  echo "connections completed. In-memory: \`handshake_floor_benchmark\` BM_MtlsHandshakeFullBothSides"
  echo "(both sides of a TLS 1.3 mTLS handshake over a BIO pair, BoringSSL as linked into tandem), run"
  echo "after the pairs in every repetition. Ratio: median of the per-repetition ratios."
  echo
  echo "| binary | CPU µs/conn out | CPU µs/conn in | both sides | in-memory handshake, µs | ratio |"
  echo "|---|---|---|---|---|---|"
  for b in "${binaries[@]}"; do
    echo "| $b | $(m $b,out) | $(m $b,in) | $(m $b,sum) | $(m floor) | $(m $b,ratio)x |"
  done
  echo
  echo "Every repetition (out; in; in-memory; ratio):"
  for b in "${binaries[@]}"; do
    echo "- $b: $(all $b,out); $(all $b,in); $(all floor); $(all $b,ratio)"
  done
  if [[ -n $PERF_DIR ]]; then
    echo
    echo "Profiles (\`perf record ${PERF_OPTS:---call-graph dwarf,16384 -F 999}\` on the tandem process"
    echo "under the same load, after the measurement; samples sorted by bench/perf_categories.py;"
    echo "in brackets the share of the side's median CPU µs per connection above):"
    echo
    local cols=()
    for role in out in; do
      for b in "${binaries[@]}"; do
        cols+=("$b $role:$(m $b,$role):${SCRIPT[$b,$role]}")
      done
    done
    python3 "$HERE/perf_categories.py" "${cols[@]}"
  fi
  echo "<!-- /handshake -->"
}
OUT_FILE="${RESULTS:-$HERE/RESULTS.md}"
report >"$W/report.md"
cat "$W/report.md"
# This section of RESULTS.md replaced (or appended); the rest stays as bench/run.sh wrote it.
replace_results_section handshake "$W/report.md" "$OUT_FILE"
