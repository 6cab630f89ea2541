#!/usr/bin/env bash
# On-demand benchmarks of the host foundation. Prints, for each measured command, the
# median, min and max wall time over N runs, and its ratio to a baseline measured in the
# same run (`sluice version`: process start, Qt and the core library, no plugins, no files).
#
#   plugins-20    `sluice plugins` with 20 plugins on the path   (target: < 100 ms)
#   check-50      `sluice check` over 50 project files          (target: < 200 ms)
#   check-1       `sluice check` over 1 project file (for scale)
#
# Usage: bash tests/bench/run.sh [runs]
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
runs="${1:-30}"
build="${SLUICE_BUILD_DIR:-$top/build}"

bash "$top/.ci/install-deps"
bash "$top/.ci/build" -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target bench-plugins >/dev/null
sluice="$build/bin/sluice"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# 20 plugins on the path, and an empty config.
mkdir -p "$work/empty"
plugins="$build/bench-plugins"
count=$(ls "$plugins"/*.so | wc -l)

# 50 project files, each using three plugin instances with settings to validate.
make_config() { # dir count
  mkdir -p "$1/projects"
  for i in $(seq 1 "$2"); do
    cat > "$1/projects/p$i.yaml" <<YAML
id: project-$i
repository:
  path: /srv/git/project-$i.git
  target_branch: main
stages:
  - name: development
  - name: review
    exit_gates: [review-verdict, bench-a]
  - name: testing
    exit_gates: [bench-b]
  - name: deploy
  - name: done
edges:
  - from: deploy
    to: done
    gates: [bench-a, bench-b]
red_policy:
  rollback_to: development
  max_retries: 3
instances:
  review-verdict:
    plugin: verdict
    settings:
      artifact: .sluice/review.md
      pass: [APPROVED]
  bench-a:
    plugin: bench-gate-$(( (i % 20) + 1 ))
    settings:
      result: pass
      delay: 5s
      labels: [a, b, c]
      limits: {files: 10}
  bench-b:
    plugin: bench-gate-$(( ((i + 7) % 20) + 1 ))
YAML
  done
}
make_config "$work/c50" 50
make_config "$work/c1" 1

# Sanity: the measured commands do what they claim.
SLUICE_PLUGIN_PATH="$plugins" "$sluice" plugins --config "$work/empty" | grep -c ' loaded ' >/dev/null
SLUICE_PLUGIN_PATH="$plugins" "$sluice" check --config "$work/c50" 2>&1 | grep -q '^ok: .* 50 valid'

measure() { # name command...
  local name="$1"; shift
  local times=()
  for _ in 1 2 3; do "$@" >/dev/null 2>&1 || true; done  # warm the page cache
  for _ in $(seq 1 "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "command failed: $*" >&2; exit 1; }
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  local sorted
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  local min med max
  min=$(echo "$sorted" | head -1)
  max=$(echo "$sorted" | tail -1)
  med=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
  echo "$name $med $min $max"
}

export SLUICE_PLUGIN_PATH="$plugins"
results=()
results+=("$(measure baseline "$sluice" version)")
results+=("$(measure plugins-20 "$sluice" plugins --config "$work/empty")")
results+=("$(measure check-1 "$sluice" check --config "$work/c1")")
results+=("$(measure check-50 "$sluice" check --config "$work/c50")")

base=$(echo "${results[0]}" | awk '{print $2}')
echo
echo "sluice host benchmarks: $runs runs each, $(nproc) cores; $count bench plugins + the installed ones on the path"
printf '%-12s %10s %10s %10s %10s %10s\n' name median_ms min_ms max_ms x_baseline target
for r in "${results[@]}"; do
  read -r name med min max <<<"$r"
  target="-"
  case "$name" in
    plugins-20) target="<100ms" ;;
    check-50) target="<200ms" ;;
  esac
  awk -v n="$name" -v med="$med" -v min="$min" -v max="$max" -v b="$base" -v t="$target" \
    'BEGIN { printf "%-12s %10.1f %10.1f %10.1f %10.2f %10s\n", n, med/1000, min/1000, max/1000, med/b, t }'
done
