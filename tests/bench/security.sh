#!/usr/bin/env bash
# On-demand benchmark of the security gate's secret scanner (not part of ctest).
#
# Generates a corpus of at least SIZE_MB megabytes of real source text from this machine
# (C/C++ headers, JavaScript, Python, Perl, JSON, Markdown) with a planted secret in every
# 40th file, then measures in the same run:
#   sluice-1      `sluice scan --threads 1` end to end: read every file, scan, report
#   sluice-all    the same on every core
#   vectorscan    a bare Vectorscan pass of the same rule regexes over the same bytes, in
#                 memory, one thread: the practical limit
#   sluice-memory the scanner over the same in-memory bytes, one thread (no file reading)
#   secretlint    secretlint with @secretlint/secretlint-rule-preset-recommend (installed
#                 into a temporary directory by npm), on a SECRETLINT_MB subset, next to
#                 sluice on the same subset: at 0.07-2 MB/s (npm JavaScript is the slow
#                 end) it would need minutes to an hour for the whole corpus
#                 (SECRETLINT_MB=all does that)
#   warm start    `sluice scan` of a one-line file with the compiled-rules cache warm, and
#                 with --no-cache (best of 5 each)
#   hostile       the cases of issue 16 in memory, 1 MB and 4 MB each: one long line of
#                 keyword hits with secrets, the same as lines, keywords alone, plain
#                 keyword assignments (bench_secretscan hostile)
# MB/s counts 1e6 bytes. The last lines print each target of issue 16 with PASS or MISS:
# sluice-1 at least 0.80 of the vectorscan rate (its scan_ms: reading and scanning every file;
# the directory walk, rule compilation and process start are outside it and shown in
# wall_ms), sluice-all at least 1.80 sluice-1 on two cores, a warm start under 100 ms, the
# long line linear and the keyword-dense cases well under a second. Other load on the
# machine lowers every figure: note the load average it prints. The same ratios are also
# printed in CPU time (the process's for sluice, the thread's for the in-memory passes),
# which other work on the machine does not inflate; the wall-time ratios are the targets.
# Set SKIP_SECRETLINT=1 to leave secretlint out (it needs npm and the network).
#
# Usage: bash tests/bench/security.sh [SIZE_MB]   (default 200; env SECRETLINT_MB, default 4)
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size_mb="${1:-200}"
secretlint_mb="${SECRETLINT_MB:-4}"
build="${SLUICE_BUILD_DIR:-$top/build}"

bash "$top/.ci/install-deps"
bash "$top/.ci/build" -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target bench_secretscan sluice >/dev/null
sluice="$build/bin/sluice"
helper="$build/bin/bench_secretscan"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
corpus="$work/corpus"
sources=()
for d in /usr/include /usr/lib/node_modules /usr/share/perl /usr/lib/python3 /usr/lib/python3.*; do
  [ -d "$d" ] && sources+=("$d")
done
read -r bytes files planted < <("$helper" generate "$corpus" "$size_mb" "${sources[@]}")
echo "corpus: $bytes bytes in $files files, $planted planted secrets (sources: ${sources[*]})"

mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f", (ms > 0 ? b / 1e6 / (ms / 1000) : 0) }'; }
json_field() { # file field
  grep -o "\"$2\": *[0-9]*" "$1" | head -1 | grep -o '[0-9]*$'
}
count_findings() { # json file of sluice scan
  grep -c '"fingerprint"' "$1" || true
}

run_sluice() { # name threads dir -> "name bytes wall_ms scan_ms findings scan_cpu_ms"
  local name="$1" threads="$2" dir="$3" out="$work/$1.json"
  "$sluice" scan --threads "$threads" --json "$dir" >/dev/null 2>&1 || true  # warm the page cache
  local t0 t1
  t0=$(date +%s%N)
  set +e
  "$sluice" scan --threads "$threads" --json "$dir" >"$out" 2>/dev/null
  local rc=$?
  set -e
  t1=$(date +%s%N)
  if [ "$rc" -gt 1 ]; then echo "sluice scan failed ($rc)" >&2; exit 1; fi
  # The busiest thread's CPU time: the scan's wall time where each thread has a core to itself.
  grep -A1 '"threadCpuMs"' "$out" | tail -1 | tr -dc '0-9' >"$work/$1.critical"
  echo "$name $(json_field "$out" bytes) $(( (t1 - t0) / 1000000 )) $(json_field "$out" scanMs) $(count_findings "$out") $(json_field "$out" scanCpuMs)"
}

results=()
results+=("$(run_sluice sluice-1 1 "$corpus")")
results+=("$(run_sluice sluice-all 0 "$corpus")")
read -r vbytes vseconds vmbps vmatched vcpu < <("$helper" vectorscan "$corpus" 2>"$work/inmemory.txt")
vms=$(awk -v s="$vseconds" 'BEGIN { printf "%d", s * 1000 }')
vcpums=$(awk -v s="$vcpu" 'BEGIN { printf "%d", s * 1000 }')
results+=("vectorscan $vbytes $vms $vms $vmatched $vcpums")
# The helper also runs the scanner itself over the same bytes in memory (no file reading).
read -r _ _ mseconds _ _ _ mfindings _ _ mcpu _ < <(tr -d ',' <"$work/inmemory.txt")
mms=$(awk -v s="$mseconds" 'BEGIN { printf "%d", s * 1000 }')
mcpums=$(awk -v s="$mcpu" 'BEGIN { printf "%d", s * 1000 }')
results+=("sluice-memory $vbytes $mms $mms $mfindings $mcpums")

# secretlint on a subset: whole files in corpus order up to SECRETLINT_MB.
subset="$work/subset"
mkdir -p "$subset"
if [ "$secretlint_mb" = all ]; then
  subset="$corpus"
else
  limit=$(( secretlint_mb * 1000000 ))
  total=0
  while IFS= read -r f; do
    s=$(stat -c %s "$f")
    [ $(( total + s )) -gt "$limit" ] && break
    mkdir -p "$subset/$(dirname "${f#"$corpus"/}")"
    cp "$f" "$subset/${f#"$corpus"/}"
    total=$(( total + s ))
  done < <(find "$corpus" -type f | sort)
fi
results+=("$(run_sluice sluice-subset 1 "$subset")")

sbytes=$(find "$subset" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
sms=0
if [ -z "${SKIP_SECRETLINT:-}" ]; then
  npmdir="$work/secretlint"
  mkdir -p "$npmdir"
  (cd "$npmdir" && npm install --silent --no-audit --no-fund secretlint @secretlint/secretlint-rule-preset-recommend >/dev/null 2>&1)
  echo '{"rules":[{"id":"@secretlint/secretlint-rule-preset-recommend"}]}' >"$npmdir/.secretlintrc.json"
  t0=$(date +%s%N)
  set +e
  (cd "$subset" && "$npmdir/node_modules/.bin/secretlint" --secretlintrc "$npmdir/.secretlintrc.json" --format json \
     --no-color "**/*" >"$work/secretlint.json" 2>"$work/secretlint.err")
  src=$?
  set -e
  t1=$(date +%s%N)
  if [ "$src" -gt 1 ]; then echo "secretlint failed ($src): $(head -c 400 "$work/secretlint.err")" >&2; exit 1; fi
  sfindings=$(grep -o '"ruleId"' "$work/secretlint.json" | wc -l || true)
  sms=$(( (t1 - t0) / 1000000 ))
  results+=("secretlint $sbytes $sms $sms $sfindings -")
fi

# Start-up: `sluice scan` of a one-line file, best of 5, with the compiled-rules cache warm
# (the second run on), and without it (--no-cache: rule compilation every time).
tiny="$work/tiny.txt"
echo "hello" >"$tiny"
export XDG_CACHE_HOME="$work/cache"
best_ms() { # args...
  local best=999999 t0 t1 ms
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 )); [ "$ms" -lt "$best" ] && best=$ms
  done
  echo "$best"
}
"$sluice" scan --threads 1 "$tiny" >/dev/null 2>&1 || true
warm_ms=$(best_ms "$sluice" scan --threads 1 "$tiny")
cold_ms=$(best_ms "$sluice" scan --threads 1 --no-cache "$tiny")

# The hostile cases of issue 16 (1 MB each, in memory, every finding kept), and the long line
# at 4 MB: linear means 4x the bytes cost about 4x the time.
"$helper" hostile 1 >"$work/hostile1.txt"
"$helper" hostile 4 >"$work/hostile4.txt"

echo
echo "secret scanning: $(nproc) cores, load average $(cut -d" " -f1-3 /proc/loadavg); MB = 1e6 bytes; findings: secrets reported"
echo "(vectorscan: files with at least one rule match; sluice scan_ms excludes process start and rule compilation)"
printf '%-14s %12s %10s %10s %10s %12s %12s %9s\n' name bytes wall_ms scan_ms cpu_ms MB/s_wall MB/s_scan findings
for r in "${results[@]}"; do
  read -r name b wall scan found cpu <<<"$r"
  printf '%-14s %12s %10s %10s %10s %12s %12s %9s\n' "$name" "$b" "$wall" "$scan" "$cpu" "$(mbps "$b" "$wall")" "$(mbps "$b" "$scan")" "$found"
done
echo
echo "hostile cases, 1 MB (ratio: bare Vectorscan time / scanner time):"
cat "$work/hostile1.txt"
echo "hostile cases, 4 MB:"
cat "$work/hostile4.txt"
echo
read -r _ b1 _ s1 _ c1 <<<"${results[0]}"
read -r _ ball _ sall _ call <<<"${results[1]}"
read -r _ bsub wsub ssub fsub <<<"${results[4]}"
long1=$(awk '$1 == "long-line" { print $4 }' "$work/hostile1.txt")
long4=$(awk '$1 == "long-line" { print $4 }' "$work/hostile4.txt")
dense1=$(awk '$1 == "keyword-dense" { print $4 }' "$work/hostile1.txt")
assign1=$(awk '$1 == "keyword-assign" { print $4 }' "$work/hostile1.txt")
dense1cpu=$(awk '$1 == "keyword-dense" { print $7 }' "$work/hostile1.txt")
assign1cpu=$(awk '$1 == "keyword-assign" { print $7 }' "$work/hostile1.txt")
long1cpu=$(awk '$1 == "long-line" { print $7 }' "$work/hostile1.txt")
long4cpu=$(awk '$1 == "long-line" { print $7 }' "$work/hostile4.txt")
awk -v b1="$b1" -v s1="$s1" -v ball="$ball" -v sall="$sall" -v vb="$vbytes" -v vs="$vseconds" \
    -v bsub="$bsub" -v ssub="$ssub" -v sb="$sbytes" -v sms="$sms" -v mms="$mms" -v cores="$(nproc)" \
    -v dense1cpu="$dense1cpu" -v assign1cpu="$assign1cpu" -v long1cpu="$long1cpu" -v long4cpu="$long4cpu" \
    -v c1="$c1" -v call="$call" -v critical="$(cat "$work/sluice-all.critical")" -v vcpu="$vcpums" -v mcpu="$mcpums" \
    -v warm="$warm_ms" -v cold="$cold_ms" -v long1="$long1" -v long4="$long4" -v dense1="$dense1" -v assign1="$assign1" 'BEGIN {
  one = b1 / 1e6 / (s1 / 1000); all = ball / 1e6 / (sall / 1000); v = vb / 1e6 / vs
  same = bsub / 1e6 / (ssub / 1000); sl = (sms > 0 ? sb / 1e6 / (sms / 1000) : 0)
  ratio = one / v
  printf "sluice-1 / vectorscan: %.2f (target >= 0.80): %s\n", ratio, (ratio >= 0.8 ? "PASS" : "MISS")
  printf "sluice-memory / vectorscan: %.2f\n", (vb / 1e6 / (mms / 1000)) / v
  printf "in CPU time: sluice-1 / vectorscan %.2f, sluice-memory / vectorscan %.2f; sluice-all used %.2fx the CPU of sluice-1\n", \
         (vcpu / c1) * (b1 / vb), vcpu / mcpu, call / c1
  scale = all / one
  if (cores >= 2)
    printf "sluice-all / sluice-1: %.2f on %d cores (target >= 1.80 on 2 cores): %s\n", scale, cores, (scale >= 1.8 ? "PASS" : "MISS")
  else
    printf "sluice-all / sluice-1: %.2f on %d core (no target on one core)\n", scale, cores
  if (critical > 0)
    printf "sluice-all: its busiest thread used %d ms of CPU, sluice-1 %d ms: %.2fx where each thread has a core of its own (what the work split allows; the load of the machine decides what it gets)\n", \
           critical, c1, c1 / critical
  printf "warm start (compiled rules cached): %d ms, cold: %d ms (target < 100 ms): %s\n", warm, cold, (warm < 100 ? "PASS" : "MISS")
  printf "long line, 1 MB: %.0f ms, 4 MB: %.0f ms, 4 MB / 1 MB: %.2f (linear: about 4); in CPU time %.0f ms, %.0f ms, %.2f\n", \
         long1, long4, long4 / long1, long1cpu, long4cpu, long4cpu / long1cpu
  printf "in CPU time: keyword-dense 1 MB %.0f ms, keyword assignments 1 MB %.0f ms\n", dense1cpu, assign1cpu
  printf "keyword-dense 1 MB: %.0f ms, keyword assignments 1 MB: %.0f ms (target well under 1000 ms): %s\n", dense1, assign1, \
         (dense1 < 500 && assign1 < 500 ? "PASS" : "MISS")
  if (sms > 0)
    printf "sluice / secretlint on the same %d bytes: %.0fx\n", sb, same / sl
}'
