#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) in build-fuzz/ and runs them.
#   scripts/fuzz.sh smoke        every target for 4 s, ~40 s in all (part of ./dev test)
#   scripts/fuzz.sh run [secs]   every target for secs (default 60), corpus grows in
#                                build-fuzz/corpus/<target> (seeds: tests/fuzz/corpus)
# A crash leaves its input in build-fuzz/crashes/<target>/ and fails the run; copy it
# into tests/fuzz/corpus/<target>/ with the fix so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
mode="${1:-smoke}"
secs="${2:-60}"
[[ "$mode" == smoke ]] && secs="${TANDEM_FUZZ_SMOKE_SECONDS:-4}"

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not installed; skipping (apt-get install clang libclang-rt-14-dev)" >&2
  exit 0
fi
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$ROOT/build-fuzz" -G Ninja -DTANDEM_FUZZ=ON \
  -DTANDEM_SANITIZE=address -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$ROOT/build-fuzz" -j "${JOBS:-$(nproc)}" fuzz_targets

status=0
total_runs=0
for bin in "$ROOT"/build-fuzz/tests/fuzz/fuzz_* "$ROOT"/build-fuzz/*/fuzz_*; do
  [[ -x "$bin" && -f "$bin" ]] || continue
  name="$(basename "$bin")"
  corpus="$ROOT/build-fuzz/corpus/$name"
  crashes="$ROOT/build-fuzz/crashes/$name"
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
