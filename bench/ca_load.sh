#!/usr/bin/env bash
# The control-plane load harness: tandem-ca against simulated agents (issue #17).
#   bench/ca_load.sh BUILD_DIR [tandem-ca-load flags...]        (./dev bench-ca)
# Needs BUILD_DIR/controlplane/tandem-ca and BUILD_DIR/bench/tandem-ca-load (./dev
# bench-ca builds both). Defaults: 10,000 agents in 4 processes of 2,500, streams
# opened at 300/s, 3 revocations, CreateCertificate at 1,000-4,000/s for 5 s each,
# then the reconnect storm (60 s deadline). About 3 minutes on 2 cores; 127.0.0.1
# only; every loop is bounded in count and time. Replaces the control-plane section
# of bench/RESULTS.md (RESULTS=FILE writes there instead) and prints it.
set -euo pipefail
B="$(cd "${1:?usage: ca_load.sh BUILD_DIR [flags]}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
OUT="${RESULTS:-$HERE/RESULTS.md}"
SECTION="$(mktemp /tmp/tandem-ca-load-section-XXXXXX)"
trap 'rm -f "$SECTION" "$SECTION.md"' EXIT
# Each agent is a socket in tandem-ca: the soft limit up to the hard one (20,000 here).
ulimit -n "$(ulimit -Hn)"
args=(--ca-bin="$B/controlplane/tandem-ca" "${@:2}")
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
rc=0
"$B/bench/tandem-ca-load" "${args[@]}" --out="$SECTION" || rc=$?
[[ -s $SECTION ]] || exit "$rc"
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
