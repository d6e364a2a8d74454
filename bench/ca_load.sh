#!/usr/bin/env bash
# The control-plane load harness: tandem-ca against simulated agents (issue #17).
#   bench/ca_load.sh BUILD_DIR [tandem-ca-load flags...]        (./dev bench-ca)
# Needs BUILD_DIR/controlplane/tandem-ca, BUILD_DIR/bench/tandem-ca-load and
# BUILD_DIR/bench/grpc_stream_floor (./dev bench-ca builds them). Defaults: 10,000
# agents in 4 processes of 2,500, streams opened at 300/s, 3 revocations,
# CreateCertificate at 1,000-4,000/s for 5 s each, then the reconnect storm (60 s
# deadline); then the same streams against a bare gRPC server, the floor (FLOOR_MODES
# below). About 5 minutes on 2 cores; 127.0.0.1 only; every loop is bounded in count
# and time. Replaces the control-plane section of bench/RESULTS.md (RESULTS=FILE
# writes there instead) and prints it.
set -euo pipefail
B="$(cd "${1:?usage: ca_load.sh BUILD_DIR [flags]}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
OUT="${RESULTS:-$HERE/RESULTS.md}"
SECTION="$(mktemp /tmp/tandem-ca-load-section-XXXXXX)"
trap 'rm -f "$SECTION" "$SECTION.md" "$SECTION.floor"' EXIT
# Each agent is a socket in tandem-ca: the soft limit up to the hard one (20,000 here).
ulimit -n "$(ulimit -Hn)"
args=(--ca-bin="$B/controlplane/tandem-ca" "${@:2}")
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
rc=0
"$B/bench/tandem-ca-load" "${args[@]}" --out="$SECTION" || rc=$?
[[ -s $SECTION ]] || exit "$rc"
# The floor under tandem-ca's KB per stream, same agents, streams phase only: a bare
# gRPC server (bench/grpc_stream_floor.cc) with gRPC's TLS, then plaintext handed in by
# fd (what gRPC would cost behind a TLS front end of tandem's own), then a plaintext
# listener. FLOOR_MODES="" skips them; each adds about the streams phase's time.
for mode in ${FLOOR_MODES-tls fd plaintext}; do
  "$B/bench/tandem-ca-load" --server-bin="$B/bench/grpc_stream_floor" \
    --server-mode="$mode" "${@:2}" --out="$SECTION.floor" || rc=$?
  { echo; cat "$SECTION.floor"; } >>"$SECTION"
done
{
  echo "<!-- control-plane: written by bench/ca_load.sh -->"
  echo "## Control plane: tandem-ca under 10,000 simulated agents"
  echo
  echo "Run: \`bench/ca_load.sh build ${*:2}\` (\`./dev bench-ca\`), $started, $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); exit status $rc."
  echo "How agents are simulated, the phases, and what each figure means: the comment"
  echo "atop bench/ca_load.cc. Notes on the figures: docs/controlplane.md, \"Scale\"."
  echo
  cat "$SECTION"
  echo "<!-- /control-plane -->"
} > "$SECTION.md"
replace_results_section control-plane "$SECTION.md" "$OUT"
cat "$SECTION.md"
exit "$rc"
