#!/usr/bin/env bash
# Claiming under churn: one node drains a large queue while the script
# samples its rate and the tasks table's dead rows every few seconds, once
# with the node's own vacuum off (`--vacuum-after 0`: only autovacuum, if
# the server runs it) and once with the default (`--vacuum-after 500000`).
#
#   benches/pg/autovacuum.sh [--tasks N] [--history H] [--interval S] [--pg ADMIN_URL] [--taskq BIN]
#
# Defaults: N=3000000, H=5000000, S=5. Tasks are inserted with one INSERT …
# SELECT from generate_series (not timed), after H rows of succeeded
# history (the idempotency record of earlier work). Every claim and every
# completion leaves a dead row version; the claim's index scan steps over
# those at the head of the queue until a vacuum removes them. Autovacuum,
# where the server runs it (the script prints the `autovacuum` setting),
# visits each database once a minute (autovacuum_naptime).
#
# Prints, per sample: seconds since the node started, tasks finished in the
# interval per second (half the table's updates: a claim and a completion
# each), n_dead_tup of taskq_tasks, and vacuums so far (manual and auto);
# then the first-third and last-third mean rates of each variant.
set -euo pipefail

tasks=3000000 history=5000000 interval=5
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
taskq="${TASKQ_BIN:-target/release/taskq}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tasks) tasks="$2"; shift 2 ;;
        --history) history="$2"; shift 2 ;;
        --interval) interval="$2"; shift 2 ;;
        --pg) pg_admin="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        *) echo "usage: $0 [--tasks N] [--history H] [--interval S] [--pg ADMIN_URL] [--taskq BIN]" >&2; exit 2 ;;
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
echo "server: autovacuum $(psql -qtAX "$pg_admin" -c 'SHOW autovacuum'), naptime $(psql -qtAX "$pg_admin" -c 'SHOW autovacuum_naptime')"

for vacuum_after in 0 500000; do
    variant="vacuum-after-$vacuum_after"
    db="taskq_vacuum_$$_$vacuum_after"
    psql -qX "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
    url="$prefix/$db"
    "$taskq" migrate --pg "$url" >/dev/null
    psql -qX "$url" -c "INSERT INTO taskq_tasks (processor, idempotency_key, task_id, image_key, size, max_attempts,
            state, attempt, finalized_at, leased_at)
        SELECT 'noop', format('old/%s.jpg:200x200', g), g::text, format('old/%s.jpg', g), '200x200', 1,
            'succeeded', 1, now(), now()
        FROM generate_series(1, $history) g" >/dev/null
    psql -qX "$url" -c "INSERT INTO taskq_tasks (processor, idempotency_key, task_id, image_key, size, max_attempts)
        SELECT 'noop', format('img/%s.jpg:200x200', g), g::text, format('img/%s.jpg', g), '200x200', 1
        FROM generate_series(1, $tasks) g" -c "VACUUM ANALYZE taskq_tasks" >/dev/null
    "$taskq" worker --pg "$url" --processor noop --workers 2 --capacity 1000 --exit-when-empty \
        --vacuum-after "$vacuum_after" >/dev/null 2>&1 &
    pid=$!
    start=$(date +%s.%N) last=0 rates=()
    echo "$variant:"
    while kill -0 "$pid" 2>/dev/null; do
        sleep "$interval"
        # Two updates per task (claim, completion): the table's update
        # counter, not a count over a table of millions of rows.
        read -r upd dead vacuums < <(psql -qtAX -F ' ' "$url" -c "SELECT n_tup_upd, n_dead_tup,
            vacuum_count + autovacuum_count FROM pg_stat_user_tables WHERE relname = 'taskq_tasks'")
        done=$((upd / 2))
        now=$(date +%s.%N)
        rate=$(awk -v d="$done" -v l="$last" -v i="$interval" 'BEGIN {printf "%.0f", (d - l) / i}')
        printf '  %6.1f s  %7s tasks/s  dead rows %8s  vacuums %s\n' "$(awk -v n="$now" -v s="$start" 'BEGIN {print n - s}')" "$rate" "$dead" "$vacuums"
        rates+=("$rate")
        last=$done
    done
    wait "$pid" || true
    pid=""
    awk -v n="$(date +%s.%N)" -v s="$start" -v t="$tasks" 'BEGIN {printf "  drained %d tasks in %.1f s: %.0f tasks/s\n", t, n - s, t / (n - s)}'
    # The last sample holds the end of the drain: left out.
    unset 'rates[${#rates[@]}-1]'
    printf '%s\n' "${rates[@]}" | awk -v v="$variant" '{a[NR]=$1} END {n=int(NR/3); if (n<1) n=1; f=0; l=0; for(i=1;i<=n;i++){f+=a[i]; l+=a[NR-n+i]} printf "  %s: first third %.0f tasks/s, last third %.0f tasks/s (%d samples)\n", v, f/n, l/n, NR}'
    psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    db=""
done
