#!/usr/bin/env bash
# The quickstart: install what is needed, build, and run Sluice on the quickstart project.
# Usage: bash resources/examples/quickstart/run.sh   (as root on a fresh Debian 12, or with sudo rights)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/../../.." && pwd)"

bash "$top/.ci/install-deps"
bash "$top/.ci/build"
sluice="$top/build/bin/sluice"

# Work on a copy, so the example in the tree stays clean.
work="${SLUICE_QUICKSTART_DIR:-$top/build/quickstart}"
rm -rf "$work"
mkdir -p "$work"
cp -r "$here/sluice.yaml" "$here/projects" "$work/"
mkdir -p "$work/work"
git init -q --bare -b main "$work/work/quickstart.git"

echo
echo "== sluice version"
"$sluice" version
echo
echo "== sluice plugins --config $work"
"$sluice" plugins --config "$work"
echo
echo "== sluice check --config $work"
"$sluice" check --config "$work"
