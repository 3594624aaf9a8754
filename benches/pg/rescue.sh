#!/usr/bin/env bash
# How long after a SIGKILL a dead node's tasks run elsewhere, with the
# default --heartbeat (2 s) and --rescue-after (20 s).
#
#   benches/pg/rescue.sh [--rounds R] [--pg ADMIN_URL] [--taskq BIN]
#
# Each round: a fresh database (dropped after), 3000 tasks of 20 ms, two
# nodes (4 workers, capacity 40 each, default timing). Once the first has
# finished 100 tasks it is SIGKILLed; the script records the server's clock
# at the kill and the rows it held, then waits until every one of them has
# been claimed again by the other node. It prints, per round, the time from
# the kill to the last of them being claimed (the "running elsewhere"
# time), and the median over the rounds.
set -euo pipefail

rounds=3
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
taskq="${TASKQ_BIN:-target/release/taskq}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --pg) pg_admin="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        *) echo "usage: $0 [--rounds R] [--pg ADMIN_URL] [--taskq BIN]" >&2; exit 2 ;;
    esac
done
[[ -x "$taskq" ]] || { echo "$taskq: not an executable (build with cargo build --release, or pass --taskq)" >&2; exit 2; }

prefix="${pg_admin%/*}"
work="$(mktemp -d)"
db=""
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    [[ -n "$db" ]] && psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

for i in $(seq 0 2999); do printf '{"image_key": "img/%07d.jpg", "size": "200x200"}\n' "$i"; done > "$work/tasks.ndjson"
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'

results=()
for r in $(seq 1 "$rounds"); do
    db="taskq_rescue_$$_$r"
    psql -qX "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
    url="$prefix/$db"
    "$taskq" enqueue --pg "$url" --tasks "$work/tasks.ndjson" >/dev/null
    node() { "$taskq" worker --pg "$url" --workers 4 --capacity 40 --latency-ms 20 >/dev/null 2>&1 & pids+=($!); }
    node; victim=$!
    until [[ $(psql -qtAX "$url" -c "SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'") -ge 100 ]]; do sleep 0.05; done
    node
    until [[ $(psql -qtAX "$url" -c "SELECT count(*) FROM taskq_nodes WHERE state = 'alive'") -ge 2 ]]; do sleep 0.05; done
    kill -9 "$victim"
    killed_at=$(psql -qtAX "$url" -c "SELECT extract(epoch FROM clock_timestamp())")
    victim_node=$(psql -qtAX "$url" -c "SELECT node_id FROM taskq_nodes WHERE pid = $victim")
    psql -qtAX "$url" -c "CREATE TABLE held AS SELECT id FROM taskq_tasks WHERE state = 'running' AND lease_node = $victim_node" >/dev/null
    held=$(psql -qtAX "$url" -c "SELECT count(*) FROM held")
    # Every held row claimed again (by the other node) or finished by it.
    until [[ $(psql -qtAX "$url" -c "SELECT count(*) FROM held h JOIN taskq_tasks t USING (id)
                                        WHERE t.lease_node IS DISTINCT FROM $victim_node AND t.attempt >= 2") -ge "$held" ]]; do
        sleep 0.1
    done
    took=$(psql -qtAX "$url" -c "SELECT round((max(extract(epoch FROM t.leased_at)) - $killed_at)::numeric, 2)
                                  FROM held h JOIN taskq_tasks t USING (id)")
    echo "round $r: node $victim_node killed holding $held tasks; all running elsewhere after $took s"
    results+=("$took")
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    pids=()
    psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    db=""
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.2f s over %d rounds [%.2f .. %.2f]\n", a[int((NR+1)/2)], NR, a[1], a[NR]}'
