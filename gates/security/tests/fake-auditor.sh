#!/bin/sh
# A stand-in for an auditor: prints a recorded report and exits with the given code.
#   fake-auditor.sh REPORT EXIT [MODE]
# MODE: sleep (hang for 30 s first), crash (kill itself with SIGSEGV), garbage (print non-JSON).
report="$1"; code="$2"; mode="${3:-}"
case "$mode" in
  sleep) sleep 30 ;;
  crash) kill -SEGV $$ ;;
  garbage) echo "Traceback (most recent call last): feed unreachable"; exit "$code" ;;
esac
[ -n "$report" ] && [ "$report" != "-" ] && cat "$report"
echo "auditing done" >&2
exit "$code"
