#!/usr/bin/env bash
# Alternating A/B of two taskq binaries, run by run: the way PERF.md compares
# a change with what came before, since this machine's speed drifts within a
# minute and two separate runs are not comparable.
#
#   benches/ab.sh ROUNDS OLD_BINARY NEW_BINARY [taskq bench options...]
#
# Each round runs OLD then NEW once (`taskq bench ... --engine taskq
# --repeat 1`) with the same options and prints both throughputs (tasks/s);
# the last line gives both medians and the median of NEW / OLD over the rounds
# with its range. Example, a change against main:
#
#   git worktree add /tmp/old main && (cd /tmp/old && cargo build --release)
#   cargo build --release
#   benches/ab.sh 15 /tmp/old/target/release/taskq target/release/taskq \
#     --workload noop --tasks 1000000 --workers 2 --producers 1 --capacity 1024
#
# Needs python3 (to read the JSON each run writes).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: benches/ab.sh ROUNDS OLD_BINARY NEW_BINARY [taskq bench options...]" >&2
  exit 2
fi
rounds=$1 old=$2 new=$3
shift 3
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

throughput() { # results dir -> taskq's throughput of its one sample
  python3 - "$1" <<'PY'
import glob, json, sys
(path,) = glob.glob(sys.argv[1] + "/*.json")
(scenario,) = json.load(open(path))["scenarios"]
(engine,) = [e for e in scenario["engines"] if e["engine"] == "taskq"]
print(engine["samples"][0]["throughput_per_s"])
PY
}

for i in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=$old
    [ "$side" = new ] && bin=$new
    dir="$work/$side-$i"
    mkdir -p "$dir"
    "$bin" bench "$@" --engine taskq --repeat 1 --results-dir "$dir" --no-plots >"$dir/out.txt" 2>&1 ||
      { echo "ab.sh: $side run $i failed:" >&2; cat "$dir/out.txt" >&2; exit 1; }
    echo "$side $(throughput "$dir")"
  done
done | tee "$work/rounds.txt"

python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
runs = {"old": [], "new": []}
for line in open(sys.argv[1]):
    side, value = line.split()
    runs[side].append(float(value))
ratios = [n / o for o, n in zip(runs["old"], runs["new"])]
print(
    f"old median {statistics.median(runs['old']) / 1e6:.3f}M/s, "
    f"new median {statistics.median(runs['new']) / 1e6:.3f}M/s, "
    f"new/old median {statistics.median(ratios):.3f} "
    f"[{min(ratios):.3f}-{max(ratios):.3f}] over {len(ratios)} rounds"
)
PY
