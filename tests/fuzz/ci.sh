#!/usr/bin/env bash
# The fuzzing step of .ci/run: every target for SLUICE_FUZZ_SECONDS (default 30) with the
# sanitizers, two at a time on two cores. SLUICE_FUZZ=off skips it. Prints how long the
# clang build and the runs took.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "${SLUICE_FUZZ:-on}" = off ]; then
  echo "fuzzing skipped (SLUICE_FUZZ=off)"
  exit 0
fi
start=$(date +%s)
SLUICE_FUZZ_JOBS="${SLUICE_FUZZ_JOBS:-$(nproc)}" bash "$top/tests/fuzz/run.sh" "${SLUICE_FUZZ_SECONDS:-30}"
echo "fuzzing finished in $(( $(date +%s) - start )) s"
