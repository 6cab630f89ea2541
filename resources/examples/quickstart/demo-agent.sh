#!/bin/sh
# DEMO AGENT — a stand-in for a real coding agent, so the quickstart runs with no model,
# no network and no account. It edits the task's worktree according to its role:
#
#   developer  writes hello.txt and commits it; its first version carries a TODO, and
#              when the task file holds the reviewer's findings (Sluice copies the text
#              below the review's front matter into the next task) it acts on them
#   reviewer   reads hello.txt and writes .sluice/review.md with YAML front matter:
#              `verdict: REQUEST_CHANGES` while a TODO is left, `verdict: APPROVED` after
#
# Usage (by the `process` agent launcher): demo-agent.sh ROLE TASK_FILE
# The current directory is the task's worktree. For real agents see agents/process/examples.
set -eu
role="$1"
task_file="$2"

git_commit() {
  git add -A
  # A re-run after a crash may find its work committed already: that is success, not an error.
  if git diff --cached --quiet; then
    echo "nothing new to commit (an earlier run did it)"
    return 0
  fi
  git -c user.name="Sluice demo agent" -c user.email="demo-agent@sluice.invalid" commit -q -m "$1"
}

case "$role" in
  developer)
    # The reviewer's own words, not just "sent back": the findings reached the task file.
    if grep -q "hello.txt still holds a TODO line" "$task_file"; then
      printf 'Hello, world!\n' > hello.txt
      git_commit "Greet the world properly (review feedback)"
      echo "developer: addressed the review feedback"
    else
      printf 'Hello, world!\nTODO: greet the world properly\n' > hello.txt
      git_commit "Add hello.txt"
      echo "developer: first version written"
    fi
    ;;
  reviewer)
    mkdir -p .sluice
    if grep -q TODO hello.txt; then
      cat > .sluice/review.md <<'MD'
---
verdict: REQUEST_CHANGES
---
hello.txt still holds a TODO line: finish the greeting before it ships.
MD
      echo "reviewer: changes requested"
    else
      cat > .sluice/review.md <<'MD'
---
verdict: APPROVED
---
The greeting is complete.
MD
      echo "reviewer: approved"
    fi
    ;;
  *)
    echo "demo agent: unknown role '$role'" >&2
    exit 2
    ;;
esac
