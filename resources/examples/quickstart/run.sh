#!/usr/bin/env bash
# The quickstart: install what is needed, build, and run one task through the quickstart
# pipeline (SQLite, a local git repository, a demo agent; nothing outside this machine).
# Usage: bash resources/examples/quickstart/run.sh   (as root on a fresh Debian 12, or with sudo rights)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/../../.." && pwd)"

bash "$top/.ci/install-deps"
bash "$top/.ci/build"
build="${SLUICE_BUILD_DIR:-$top/build}"
sluice="$build/bin/sluice"

# Work on a copy, so the example in the tree stays clean.
work="${SLUICE_QUICKSTART_DIR:-$build/quickstart}"
rm -rf "$work"
mkdir -p "$work/work"
cp -r "$here/sluice.yaml" "$here/projects" "$work/"
sed -i "s|@DEMO_AGENT@|$here/demo-agent.sh|" "$work/projects/quickstart.yaml"

# The project's repository: a bare repository with one commit on main.
git init -q --bare -b main "$work/work/quickstart.git"
seed="$(mktemp -d)"
git -C "$seed" init -q -b main
printf '# quickstart\n' > "$seed/README.md"
git -C "$seed" add README.md
git -C "$seed" -c user.name=quickstart -c user.email=quickstart@sluice.invalid commit -q -m "Initial commit"
git -C "$seed" push -q "$work/work/quickstart.git" main
rm -rf "$seed"

echo "== sluice plugins"
"$sluice" plugins --config "$work"
echo
echo "== sluice check"
"$sluice" check --config "$work"
echo
echo "== sluice submit"
"$sluice" submit --config "$work" --project quickstart --title "Say hello" \
  --description "Add hello.txt that greets the world."
echo
echo "== sluice serve --exit-when-idle (the pipeline runs; log below)"
timeout 300 "$sluice" serve --config "$work" --exit-when-idle 2>&1 | grep -E "sluice.core.(engine|worker)" || true
echo
echo "== the task's journey: sluice task 1"
"$sluice" task --config "$work" 1
echo
echo "== the work itself: git log of the task branch"
git -C "$work/work/quickstart.git" log --oneline main..sluice/say-hello
