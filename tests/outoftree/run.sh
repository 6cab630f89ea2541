#!/usr/bin/env bash
# Proves the SDK path end to end: install Sluice into a prefix, build a gate plugin from a
# separate CMake project against it, test it with the installed test support, drop it into
# a plugin directory and have the installed `sluice` load it and validate a project using it.
# Usage: run.sh <sluice build dir> <scratch dir>
set -euo pipefail
build="$1"
work="$2"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/licence"
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"

cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/sluice/gate.h"
test -f "$work/prefix/lib/cmake/Sluice/SluiceConfig.cmake" || test -n "$(find "$work/prefix" -name SluiceConfig.cmake)"

cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$work/build"
(cd "$work/build" && ctest --output-on-failure)

mkdir -p "$work/plugins" "$work/config/projects"
chmod 755 "$work/plugins"
cp "$work/build/licence_gate.so" "$work/plugins/"
chmod 644 "$work/plugins/licence_gate.so"

sluice="$work/prefix/bin/sluice"
listing="$(SLUICE_PLUGIN_PATH="$work/plugins" "$sluice" plugins --config "$work/config")"
echo "$listing"
echo "$listing" | grep -Eq '^licence +gate +1\.0\.0 +2\.0 +loaded +'"$work/plugins/licence_gate.so"'$'
# The plugins installed with the host are found too, in the installed plugin directory.
echo "$listing" | grep -Eq '^verdict +gate +.* loaded +'"$work/prefix"'/.*/sluice_gate_verdict\.so$'

cat > "$work/config/projects/demo.yaml" <<'YAML'
id: demo
repository:
  path: /srv/git/demo.git
stages:
  - name: development
  - name: review
    exit_gates: [licence]
  - name: done
instances:
  licence:
    plugin: licence
    settings:
      allowed: [Apache-2.0]
YAML
SLUICE_PLUGIN_PATH="$work/plugins" "$sluice" check --config "$work/config"

# A wrong setting of the new plugin is caught by the host with file:line:column.
sed -i 's/allowed:/alowed:/' "$work/config/projects/demo.yaml"
if out="$(SLUICE_PLUGIN_PATH="$work/plugins" "$sluice" check --config "$work/config")"; then
  echo "check accepted a typo in the plugin's settings" >&2
  exit 1
fi
echo "$out"
echo "$out" | grep -q "demo.yaml:13:7: instances.licence.settings.alowed: unknown key (did you mean 'allowed'?)"
echo "out-of-tree plugin: built, tested, loaded and validated"
