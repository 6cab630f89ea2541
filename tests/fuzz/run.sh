#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer, UndefinedBehaviorSanitizer) into
# build-fuzz/ and runs each for SECONDS (default 600), SLUICE_FUZZ_JOBS at a time (default:
# the number of cores). Every target starts from its committed corpus (tests/fuzz/corpus/NAME:
# reproducers of fixed crashes and inputs found before) and its seeds from the test data;
# what it finds goes to build-fuzz/corpus/NAME, a crash to build-fuzz/artifacts/NAME/.
# Prints per target: runs, final coverage, peak memory, and whether it crashed, leaked or ran
# out of memory; exits 1 if any did. See docs/fuzzing.md.
#
# Usage: bash tests/fuzz/run.sh [SECONDS] [TARGET...]      (TARGET: e.g. secret_scanner)
# Env:   SLUICE_FUZZ_BUILD_DIR, SLUICE_FUZZ_JOBS, SLUICE_FUZZ_MAX_LEN (default 65536),
#        SLUICE_FUZZ_RSS_MB (default 2048), CXX (default clang++-16)
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-600}"
shift || true
build="${SLUICE_FUZZ_BUILD_DIR:-$top/build-fuzz}"
jobs="${SLUICE_FUZZ_JOBS:-$(nproc)}"
max_len="${SLUICE_FUZZ_MAX_LEN:-65536}"
rss_mb="${SLUICE_FUZZ_RSS_MB:-2048}"
cxx="${CXX:-clang++-16}"

export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$top}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$top/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS="-O1" "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$jobs"

mapfile -t lines < "$build/targets.tsv"
selected=()
for line in "${lines[@]}"; do
  [ -n "$line" ] || continue
  name="${line%%$'\t'*}"
  if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx "${name#fuzz_}"; then selected+=("$line"); fi
done

run_one() { # line
  local name="${1%%$'\t'*}" seeds="${1#*$'\t'}"
  local short="${name#fuzz_}"
  local corpus="$build/corpus/$short" artifacts="$build/artifacts/$short/" log="$build/logs/$short.log"
  mkdir -p "$corpus" "$artifacts" "$build/logs" "$top/tests/fuzz/corpus/$short"
  local dirs=("$corpus" "$top/tests/fuzz/corpus/$short")
  IFS='|' read -r -a extra <<<"$seeds"
  for d in "${extra[@]}"; do [ -d "$d" ] && dirs+=("$d"); done
  local suppressions="$top/tests/fuzz/lsan-$short.supp" lsan=""
  [ -f "$suppressions" ] && lsan="suppressions=$suppressions"
  set +e
  LSAN_OPTIONS="$lsan:${LSAN_OPTIONS:-}" \
  ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}" \
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:${ASAN_OPTIONS:-}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
    "$build/$name" -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -max_len="$max_len" \
      -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts" "${dirs[@]}" >"$log" 2>&1
  local rc=$?
  set -e
  local runs cov rss verdict
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  if [ "$rc" -eq 0 ]; then verdict=ok
  elif grep -q 'ERROR: LeakSanitizer' "$log"; then verdict=LEAK
  elif grep -q -e 'out-of-memory' -e 'malloc(.*) exceeds limit' "$log"; then verdict=OOM
  elif grep -q 'ALARM: working on the last Unit for' "$log"; then verdict=TIMEOUT
  else verdict=CRASH
  fi
  printf '%-18s %-8s runs %-10s cov %-6s peak_rss_mb %-6s log %s\n' "$short" "$verdict" "$runs" "$cov" "$rss" "$log"
  [ "$verdict" = ok ]
}
export -f run_one
export build top seconds max_len rss_mb

echo "fuzzing ${#selected[@]} target(s) for ${seconds} s each, $jobs at a time"
status=0
printf '%s\0' "${selected[@]}" | xargs -0 -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || status=1
if [ "$status" -ne 0 ]; then
  echo "FAILED: see the logs above; crash inputs are in $build/artifacts/" >&2
fi
exit "$status"
