#!/usr/bin/env bash
# Runs the libFuzzer targets of the clang ASan+UBSan tree, build-asan/ (`./dev test` and
# `./dev fuzz` build them there; its ctest replays each corpus).
#   scripts/fuzz.sh smoke        every target for 4 s, ~40 s in all (part of ./dev test)
#   scripts/fuzz.sh run [secs]   every target for secs (default 60), corpus grows in
#                                build-asan/corpus/<target> (seeds: tests/fuzz/corpus)
# A crash leaves its input in build-asan/crashes/<target>/ and fails the run; copy it
# into tests/fuzz/corpus/<target>/ with the fix so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TREE="$ROOT/build-asan"
mode="${1:-smoke}"
secs="${2:-60}"
[[ "$mode" == smoke ]] && secs="${TANDEM_FUZZ_SMOKE_SECONDS:-4}"

if ! grep -qs '^TANDEM_FUZZ:BOOL=ON' "$TREE/CMakeCache.txt"; then
  echo "fuzz: $TREE has no libFuzzer targets; build them with ./dev fuzz" >&2
  exit 1
fi

status=0
total_runs=0
for bin in "$TREE"/tests/fuzz/fuzz_* "$TREE"/*/fuzz_*; do
  [[ -x "$bin" && -f "$bin" ]] || continue
  name="$(basename "$bin")"
  corpus="$TREE/corpus/$name"
  crashes="$TREE/crashes/$name"
  mkdir -p "$corpus" "$crashes"
  seeds="$ROOT/tests/fuzz/corpus/$name"
  [[ -d "$seeds" ]] || seeds=""
  out="$(ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -rss_limit_mb=1024 \
          -timeout=10 -artifact_prefix="$crashes/" -print_final_stats=1 \
          "$corpus" $seeds 2>&1)" || { echo "FAIL: $name crashed:"; tail -30 <<<"$out"; status=1; continue; }
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' <<<"$out" | grep -o '[0-9]*$' || echo 0)"
  total_runs=$((total_runs + runs))
  echo "ok: $name ran $runs inputs in ${secs}s, no crash"
done
echo "fuzz: $total_runs inputs in total"
exit $status
