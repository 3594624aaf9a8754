#!/usr/bin/env bash
# Claiming under churn: one node drains a large queue while the script
# samples its rate and the table's dead rows every few seconds, once with
# the tasks table's own autovacuum settings (crates/pg/src/schema.rs) and
# once with the server's defaults (the table's settings reset).
#
#   benches/pg/autovacuum.sh [--tasks N] [--interval S] [--pg ADMIN_URL] [--taskq BIN]
#
# Defaults: N=600000, S=3. Tasks are inserted with one INSERT … SELECT from
# generate_series (not timed). Prints, per sample: seconds since the node
# started, tasks succeeded in the interval per second, n_dead_tup of
# taskq_tasks, and autovacuum runs so far; then the first-third and
# last-third mean rates of each variant.
set -euo pipefail

tasks=600000 interval=3
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
taskq="${TASKQ_BIN:-target/release/taskq}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tasks) tasks="$2"; shift 2 ;;
        --interval) interval="$2"; shift 2 ;;
        --pg) pg_admin="$2"; shift 2 ;;
        --taskq) taskq="$2"; shift 2 ;;
        *) echo "usage: $0 [--tasks N] [--interval S] [--pg ADMIN_URL] [--taskq BIN]" >&2; exit 2 ;;
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

for variant in taskq-settings server-defaults; do
    db="taskq_vacuum_$$_${variant//-/_}"
    psql -qX "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
    url="$prefix/$db"
    "$taskq" migrate --pg "$url" >/dev/null
    if [[ "$variant" == server-defaults ]]; then
        psql -qX "$url" -c "ALTER TABLE taskq_tasks RESET (fillfactor, autovacuum_vacuum_scale_factor,
            autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor, autovacuum_analyze_threshold,
            autovacuum_vacuum_cost_limit, autovacuum_vacuum_cost_delay)" >/dev/null
    fi
    psql -qX "$url" -c "INSERT INTO taskq_tasks (processor, idempotency_key, task_id, image_key, size, max_attempts)
        SELECT 'noop', format('img/%s.jpg:200x200', g), g::text, format('img/%s.jpg', g), '200x200', 1
        FROM generate_series(1, $tasks) g" -c "VACUUM ANALYZE taskq_tasks" >/dev/null
    "$taskq" worker --pg "$url" --processor noop --workers 2 --capacity 1000 --exit-when-empty >/dev/null 2>&1 &
    pid=$!
    start=$(date +%s.%N) last=0 rates=()
    echo "$variant:"
    while kill -0 "$pid" 2>/dev/null; do
        sleep "$interval"
        read -r done dead vacuums < <(psql -qtAX -F ' ' "$url" -c "SELECT (SELECT count(*) FROM taskq_tasks WHERE state = 'succeeded'),
            n_dead_tup, autovacuum_count FROM pg_stat_user_tables WHERE relname = 'taskq_tasks'")
        now=$(date +%s.%N)
        rate=$(awk -v d="$done" -v l="$last" -v i="$interval" 'BEGIN {printf "%.0f", (d - l) / i}')
        printf '  %6.1f s  %7s tasks/s  dead rows %8s  autovacuums %s\n' "$(awk -v n="$now" -v s="$start" 'BEGIN {print n - s}')" "$rate" "$dead" "$vacuums"
        [[ "$done" -lt "$tasks" ]] && rates+=("$rate")
        last=$done
    done
    wait "$pid" || true
    pid=""
    printf '%s\n' "${rates[@]}" | awk -v v="$variant" '{a[NR]=$1} END {n=int(NR/3); if (n<1) n=1; f=0; l=0; for(i=1;i<=n;i++){f+=a[i]; l+=a[NR-n+i]} printf "  %s: first third %.0f tasks/s, last third %.0f tasks/s (%d samples)\n", v, f/n, l/n, NR}'
    psql -qX "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    db=""
done
