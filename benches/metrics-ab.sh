#!/usr/bin/env bash
# Does serving /metrics slow the hot path? Alternating runs of one binary
# over the same 1M no-op tasks, without and with `--metrics-addr`, the
# endpoint scraped every 100 ms (about 30 times faster than a usual
# Prometheus interval) while the run lasts:
#
#   benches/metrics-ab.sh [ROUNDS] [BINARY]
#
# Defaults: 11 rounds, target/release/taskq. Prints each round's two
# throughputs (the report's throughput_per_s), then both medians and the
# median of with / without with its range. No database (--no-db), 2
# workers, capacity 1024: the noop-1m settings of the standard suite.
set -euo pipefail
rounds="${1:-11}" taskq="${2:-target/release/taskq}"
[[ -x "$taskq" ]] || { echo "$taskq: not an executable (cargo build --release -p taskq-cli)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$taskq" generate --count 1000000 --out "$work/tasks.ndjson" --format ndjson > /dev/null
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'
echo "cores: $(nproc); kernel: $(uname -r); binary: $taskq"

one() { # extra args... -> throughput
    "$taskq" run --tasks "$work/tasks.ndjson" --processor noop --no-db --no-progress \
        --workers 2 --capacity 1024 --report "$work/r.json" "$@" > /dev/null 2> "$work/err.txt" \
        || { cat "$work/err.txt" >&2; exit 1; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["counts"]["succeeded"] == 1000000; print(r["throughput_per_s"])' "$work/r.json"
}
scraped() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ( for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true; sleep 0.1; done ) &
    local scraper=$!
    one --metrics-addr "127.0.0.1:$port"
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
}

plain=() with=() ratios=()
for r in $(seq 1 "$rounds"); do
    p=$(one) w=$(scraped)
    ratio=$(awk -v a="$w" -v b="$p" 'BEGIN {printf "%.3f", a / b}')
    echo "round $r: without $p, with $w, with/without $ratio"
    plain+=("$p") with+=("$w") ratios+=("$ratio")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
lo=$(printf '%s\n' "${ratios[@]}" | sort -g | head -1) hi=$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)
echo "median: without $(median "${plain[@]}")/s, with $(median "${with[@]}")/s; with/without $(median "${ratios[@]}") [$lo-$hi] over $rounds rounds"
