#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ABI check of the installed SDK library (docs/sdk.md, "ABI check"): dumps the ABI of the
# built libsluice-core with abidw and compares it with abidiff against the committed baseline
# core/abi/sluice-core-<major>.abi.
#
# Usage: check.sh <libsluice-core.so> <SDK ABI major> [--update]
#   An incompatible change fails while the ABI major is the baseline's: abidiff's bit 8 (a
#   removed function or variable), or bit 4 with a removed or changed function or variable in
#   its summaries (a class whose layout or virtual table changed). Compatible additions (bit 4,
#   only "Added") pass and are listed. When the ABI major is not the baseline's, the check is
#   skipped (exit 77) with the command that makes the new baseline.
#   --update writes the baseline for <major> from the library and removes the older one.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
library="$1"
major="$2"
mode="${3:-check}"
abidir="$top/core/abi"
baseline="$abidir/sluice-core-$major.abi"
update="tests/abi/check.sh $library $major --update"

for tool in abidw abidiff; do
  command -v "$tool" >/dev/null || { echo "abi: $tool is missing (Debian package abigail-tools, .ci/install-deps)" >&2; exit 1; }
done
[ -f "$library" ] || { echo "abi: no library at $library" >&2; exit 1; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Paths in the dump are kept relative (no corpus or compilation directory): the baseline does
# not depend on where the tree was built. The library is built with -g whatever the build type.
abidw --no-corpus-path --no-comp-dir-path --exported-interfaces-only \
      --out-file "$scratch/current.abi" "$library"
if ! grep -q "<class-decl name='PluginContext'" "$scratch/current.abi"; then
  echo "abi: $library has no debug information for the SDK's types (is it built with -g?)" >&2
  exit 1
fi

if [ "$mode" = "--update" ]; then
  mkdir -p "$abidir"
  find "$abidir" -name 'sluice-core-*.abi' ! -name "sluice-core-$major.abi" -delete
  cp "$scratch/current.abi" "$baseline"
  echo "abi: wrote ${baseline#"$top"/} (ABI major $major)"
  exit 0
fi

if [ ! -f "$baseline" ]; then
  others="$(cd "$abidir" 2>/dev/null && ls sluice-core-*.abi 2>/dev/null || true)"
  echo "abi: SLUICE_SDK_ABI_MAJOR is $major and there is no baseline for it (${others:-no baseline at all} in core/abi)."
  echo "abi: a new ABI major starts a new baseline; make it from this build and commit it:"
  echo "       $update"
  exit 77
fi

set +e
abidiff --no-corpus-path \
        "$baseline" "$scratch/current.abi" > "$scratch/report" 2>&1
status=$?
set -e
if (( status & 3 )); then
  cat "$scratch/report"
  echo "abi: abidiff could not compare (exit status $status)" >&2
  exit 1
fi
# abidiff sets bit 8 only for removed functions and variables; a changed class layout or
# virtual table of an exported interface (a member added, removed or reordered) comes as
# bit 4 with "Changed" in its summaries. Only additions are compatible.
changed="$( { grep -E '^(Functions|Variables) changes summary:' "$scratch/report" \
               | grep -Ev ': 0 Removed( \([^)]*\))?, 0 Changed' || true
             grep -E '^(Function|Variable) symbols changes summary:' "$scratch/report" \
               | grep -Ev ': 0 Removed( \([^)]*\))?,' || true; } )"
if (( status & 8 )) || [ -n "$changed" ]; then
  cat "$scratch/report"
  echo "abi: INCOMPATIBLE change to libsluice-core against ${baseline#"$top"/} (ABI major $major)." >&2
  echo "abi: undo it, or raise SLUICE_SDK_ABI_MAJOR in CMakeLists.txt (plugins must be rebuilt) and make a new baseline." >&2
  exit 1
fi
if (( status & 4 )); then
  cat "$scratch/report"
  echo "abi: compatible additions against ${baseline#"$top"/} (listed above); announce them with a new SDK API minor."
  exit 0
fi
echo "abi: libsluice-core matches ${baseline#"$top"/}"
