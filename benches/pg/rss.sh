#!/usr/bin/env bash
# A node's memory does not grow with the queue: its RSS over a fixed time,
# draining a queue of 100k tasks and one of --tasks (default 10M).
#
#   benches/pg/rss.sh [--tasks N] [--seconds S] [--pg ADMIN_URL] [--taskq BIN]
#
# Tasks are inserted with one INSERT … SELECT from generate_series (not
# timed; 10M rows take a few minutes and about 3 GB). The node (noop, 2
# workers, capacity 1000) runs for S seconds (default 30) on each queue;
# VmRSS is sampled every second. Prints the peak and last RSS and the tasks
# done, per queue size.
set -euo pipefail

big=10000000 seconds=30
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
taskq="${TASKQ_BIN:-target/release/taskq}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tasks) big="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --pg) pg_admin="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        *) echo "usage: $0 [--tasks N] [--seconds S] [--pg ADMIN_URL] [--taskq BIN]" >&2; exit 2 ;;
    esac
done
[[ -x "$taskq" ]] || { echo "$taskq: not an executable (cargo build --release, or pass --taskq)" >&2; exit 2; }
prefix="${pg_admin%/*}"
db="" pid=""
cleanup() {
    [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
    [[ -n "$db" ]] && psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'

for n in 100000 "$big"; do
    db="taskq_rss_$$_$n"
    psql -qX "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
    url="$prefix/$db"
    "$taskq" migrate --pg "$url" >/dev/null
    psql -qX "$url" -c "INSERT INTO taskq_tasks (processor, idempotency_key, task_id, image_key, size, max_attempts)
        SELECT 'noop', format('img/%s.jpg:200x200', g), g::text, format('img/%s.jpg', g), '200x200', 1
        FROM generate_series(1, $n) g" -c "VACUUM ANALYZE taskq_tasks" >/dev/null
    "$taskq" worker --pg "$url" --processor noop --workers 2 --capacity 1000 >/dev/null 2>&1 &
    pid=$!
    peak=0 last=0
    for _ in $(seq 1 "$seconds"); do
        sleep 1
        kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        last=$kb
        (( kb > peak )) && peak=$kb
    done
    done_n=$(psql -qtAX "$url" -c "SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'")
    kill -TERM "$pid"; wait "$pid" || true; pid=""
    printf 'queue of %9d tasks: %d done in %d s; RSS peak %.1f MiB, last %.1f MiB\n' "$n" "$done_n" "$seconds" "$(awk -v k="$peak" 'BEGIN {print k/1024}')" "$(awk -v k="$last" 'BEGIN {print k/1024}')"
    psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    db=""
done
