#!/usr/bin/env bash
# The forge-fault campaign in full (issue 23.4, docs/testing.md): N scenarios (default 10,000)
# against the ci gate, the ci-umbrella sweeper, the merge gate (through the real connectors and
# the fake forge) and the webhook intake (a real daemon in process taking the fake forge's
# deliveries and hostile ones), from a random base seed (or BASE), with the figures at the end. A failing
# scenario is printed with its seed and the command that replays it exactly; so is the base,
# which replays the whole run. The default test run does 1,000 from a fixed base.
# Usage: tests/bench/faults.sh [N] [BASE]
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SLUICE_BUILD_DIR:-$top/build}"
cmake --build "$build" --target tst_forgefaults >/dev/null
export SLUICE_FAULTS_SCENARIOS="${1:-10000}"
export SLUICE_FAULTS_BASE="${2:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}"
export QTEST_FUNCTION_TIMEOUT=36000000 # QtTest stops a test function after 5 min by default
exec "$build/bin/tst_forgefaults" -maxwarnings 0 campaign
