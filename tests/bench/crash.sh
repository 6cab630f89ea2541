#!/usr/bin/env bash
# Crash anywhere, in full: 500 SIGKILLs of the daemon (and of agents between) on the
# quickstart pipeline, the invariants checked after every restart, the figures printed.
# The default test run does the same with 30 kills. Usage: tests/bench/crash.sh [KILLS] [SEED]
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SLUICE_BUILD_DIR:-$top/build}"
cmake --build "$build" --target tst_crashanywhere sluice sluice_stage_agent sluice_agent_process sluice_stage_command sluice_gate_verdict
export SLUICE_CRASH_KILLS="${1:-500}"
[ -n "${2:-}" ] && export SLUICE_CRASH_SEED="$2"
"$build/bin/tst_crashanywhere" -maxwarnings 0 2>&1 | grep -vE "^QDEBUG|loader: debug"
