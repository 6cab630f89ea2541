#!/usr/bin/env bash
# Crash anywhere, in full: 500 SIGKILLs of the daemon (and of agents between) on the
# quickstart pipeline, the invariants checked after every restart, the figures printed —
# once with max_attempts 20 and once with max_attempts 1 (500 kills each; about 15 minutes
# each on two cores). The default test run does the same with 30 kills.
# Usage: tests/bench/crash.sh [KILLS] [SEED] [ROW]   ROW: "max_attempts 20" or "max_attempts 1"
# It runs a private copy of the build, so rebuilding meanwhile does not disturb it.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SLUICE_BUILD_DIR:-$top/build}"
cmake --build "$build" --target tst_crashanywhere sluice sluice-supervise sluice_stage_agent sluice_agent_process sluice_stage_command sluice_gate_verdict
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
# libexec: the agents' supervisor, found next to the executable (without it no agent starts).
cp -a "$build/bin" "$build/lib" "$build/libexec" "$copy/"
export LD_LIBRARY_PATH="$copy/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SLUICE_CRASH_EXECUTABLE="$copy/bin/sluice"
export SLUICE_CRASH_KILLS="${1:-500}"
export QTEST_FUNCTION_TIMEOUT=36000000 # QtTest stops a test function after 5 min by default
[ -n "${2:-}" ] && export SLUICE_CRASH_SEED="$2"
"$copy/bin/tst_crashanywhere" -maxwarnings 0 ${3:+"killAnywhereLosesNothing:$3"} 2>&1 | grep -vE "^QDEBUG|loader: debug"
