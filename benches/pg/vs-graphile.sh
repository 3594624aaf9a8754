#!/usr/bin/env bash
# taskq against graphile-worker, alternating: R pairs of one graphile-worker
# round (benches/pg/graphile.sh) and one taskq round (taskq bench
# --workload pg-noop, one node), the same number of no-op jobs each, so that
# both see the same machine load; prints each pair's ratio and the median.
#
#   benches/pg/vs-graphile.sh [--pairs R] [--jobs N] [--capacity C] [--pg ADMIN_URL] [--taskq BIN]
#
# Defaults: R=7, N=20000, C=1000 (taskq's node capacity; graphile-worker
# runs with graphile.sh's defaults: concurrency 10, local queue 500, batched
# completion).
set -euo pipefail

pairs=7 jobs=20000 capacity=1000
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
taskq="${TASKQ_BIN:-target/release/taskq}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --pairs) pairs="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --capacity) capacity="$2"; shift 2 ;;
        --pg) pg_admin="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        *) echo "usage: $0 [--pairs R] [--jobs N] [--capacity C] [--pg ADMIN_URL] [--taskq BIN]" >&2; exit 2 ;;
    esac
done
[[ -x "$taskq" ]] || { echo "$taskq: not an executable (cargo build --release, or pass --taskq)" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'
ratios=()
for p in $(seq 1 "$pairs"); do
    "$here/graphile.sh" --jobs "$jobs" --rounds 1 --pg "$pg_admin" > "$out/g.txt" 2>&1
    g=$(sed -n 's/.*= \([0-9]*\) jobs\/s.*/\1/p' "$out/g.txt" | head -1)
    "$taskq" bench --workload pg-noop --pg "$pg_admin" --tasks "$jobs" --nodes 1 --repeat 1 \
        --capacity "$capacity" --engine taskq --pg-load 0 --report "$out/t.json" > "$out/t.txt" 2>&1
    t=$(sed -n 's/.*round 1: \([0-9]*\) jobs\/s.*/\1/p' "$out/t.txt" | head -1)
    [[ -n "$g" && -n "$t" ]] || { cat "$out/g.txt" "$out/t.txt" >&2; exit 1; }
    r=$(awk -v t="$t" -v g="$g" 'BEGIN {printf "%.2f", t / g}')
    echo "pair $p: graphile-worker $g jobs/s, taskq $t jobs/s, ratio $r (load $(cut -d' ' -f1 /proc/loadavg))"
    ratios+=("$r")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "taskq / graphile-worker: median x%.2f over %d pairs [%.2f .. %.2f]\n", a[int((NR+1)/2)], NR, a[1], a[NR]}'
