#!/usr/bin/env bash
# Several nodes, longer than the default test run: tst_nodeflow's scenario (three `sluice serve`
# on one store, tasks through real agents, a merge gate on the local forge, a once-only deploy
# hook) with more tasks and several rounds of disruption — each round kills one node with
# SIGKILL mid-run, SIGSTOPs another mid-run past node_timeout and resumes it (it must exit 75
# and do nothing), then starts both again. Both engines: one shared SQLite file and a
# PostgreSQL server of its own (tests/support/pg-test-server.sh).
#
# On failure the test prints the timeline — per node its claims (from its log), the kills,
# stops, resumes and restarts, every agent's and deploy hook's start and end from the ledger in
# time order, and the jobs; on success one summary line per engine.
#
# Usage: tests/bench/nodes.sh [TASKS] [ROUNDS] [ENGINE]   (defaults 40, 4, both; ENGINE sqlite|postgresql)
# Each round needs about ten tasks still under way when it strikes: TASKS below 10 x ROUNDS can
# end with "every task was done before the kill".
# It runs a private copy of the build, so rebuilding meanwhile does not disturb it.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SLUICE_BUILD_DIR:-$top/build}"
cmake --build "$build" --target tst_nodeflow sluice sluice_forge_local sluice_gate_merge sluice_stage_agent \
  sluice_agent_process sluice_stage_command >/dev/null
work="$(mktemp -d)"
chmod 755 "$work" # the PostgreSQL server runs as postgres
pg="$work/pg"
cleanup() {
  sh "$top/tests/support/pg-test-server.sh" stop "$pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cp -a "$build/bin" "$build/lib" "$work/"
export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SLUICE_NODEFLOW_TASKS="${1:-40}"
export SLUICE_NODEFLOW_ROUNDS="${2:-4}"
row="${3:-}"
export QTEST_FUNCTION_TIMEOUT=7200000 # QtTest stops a test function after 5 min by default
if [ -z "$row" ] || [ "$row" = postgresql ]; then
  sh "$top/tests/support/pg-test-server.sh" start "$pg" >/dev/null
  export SLUICE_TEST_PG_CONNINFO="$pg/conninfo"
fi
echo "nodes.sh: $SLUICE_NODEFLOW_TASKS task(s), $SLUICE_NODEFLOW_ROUNDS round(s) of kill -9 + SIGSTOP/SIGCONT + restart, ${row:-both engines}"
status=0
# The daemons' own debug output stays in their logs (the timeline quotes them on failure).
QT_LOGGING_RULES="sluice.*.debug=false" "$work/bin/tst_nodeflow" -maxwarnings 0 \
  ${row:+"tasksFlowThroughKillAndStop:$row"} 2>&1 | grep -vE "^QDEBUG" || status=$? # pipefail: the test's status
exit "$status"
