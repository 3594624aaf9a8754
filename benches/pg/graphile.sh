#!/usr/bin/env bash
# No-op job throughput of graphile-worker (the Node.js PostgreSQL job queue) on
# the local PostgreSQL, as a reference point for taskq's PostgreSQL mode.
#
#   benches/pg/graphile.sh [--jobs N] [--rounds R] [--concurrency C]
#                          [--processes P] [--local-queue S] [--batch-delay MS]
#                          [--poll-ms MS] [--timeout S] [--pg ADMIN_URL]
#                          [--json PATH]
#
# Defaults: N=20000, R=3, C=10 (graphile's concurrency is per process: C jobs
# in flight in each of P worker processes; default P=1), S=500, MS=0,
# ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres.
#
# What it does:
#  * installs graphile-worker@$GRAPHILE_WORKER_VERSION (default pinned below)
#    with npm into a scratch directory outside the repository
#    ($GRAPHILE_DIR, default ${TMPDIR:-/tmp}/taskq-graphile), once, and writes
#    a small Node driver (bench.js) there;
#  * creates a fresh database taskq_graphile_<random> through ADMIN_URL and
#    drops it on exit;
#  * each round: runs graphile-worker's migrations (runMigrations(), a no-op
#    after the first round), enqueues N `noop` jobs in one
#    graphile_worker.add_jobs(job_spec[]) call (not timed), VACUUM ANALYZEs
#    the jobs table and CHECKPOINTs (so every round starts from the same state
#    and no round pays for the previous round's dead rows), then starts P
#    worker processes (library run() API, task `noop` returns immediately)
#    and times from the moment they are told to start (after Node has booted
#    and loaded graphile-worker) until graphile_worker._private_jobs is empty
#    (graphile deletes completed jobs), polled every --poll-ms (default 50 ms)
#    from a separate coordinator process. The result is therefore conservative
#    by up to one poll interval and includes the worker's own startup
#    (connecting, checking migrations: tens of ms).
#
# Worker settings are the ones graphile-worker's performance docs
# (https://worker.graphile.org/docs/performance) use for their throughput
# numbers: concurrentJobs C, maxPoolSize max(10, C+2) per process (the
# recommendation in the WorkerOptions docs), localQueue.size 500 (batched,
# locked fetch; raised to C+1 if C >= 500), completeJobBatchDelay 0 and
# failJobBatchDelay 0 (batched completion), prepared statements on
# (noPreparedStatements: false, the default), pollInterval 100 ms.
# All of these exist in the pinned 0.17.x (checked in
# node_modules/graphile-worker/dist/index.d.ts and interfaces.d.ts); localQueue
# and the batch delays appeared in 0.17.0 and are *not* in 0.16.x, where the
# driver would silently ignore them.
#
# Version pin: 0.17.3 is the newest release that runs on this machine's
# Node 20. 0.18.0 (npm "latest") requires Node >= 22.18 (package.json
# engines) and is ESM-only; the driver loads graphile-worker with import() so
# GRAPHILE_WORKER_VERSION=0.18.0 can be tried on a newer Node.
#
# Needs: node + npm (registry reachable on first run), psql, awk.
set -euo pipefail

jobs=20000 rounds=3 concurrency=10 processes=1 local_queue=500 batch_delay=0
poll_ms=50 timeout_s=600
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
json_out=""
version="${GRAPHILE_WORKER_VERSION:-0.17.3}"
dir="${GRAPHILE_DIR:-${TMPDIR:-/tmp}/taskq-graphile}"

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --processes) processes=$2; shift 2 ;;
    --local-queue) local_queue=$2; shift 2 ;;
    --batch-delay) batch_delay=$2; shift 2 ;;
    --poll-ms) poll_ms=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --pg) pg_admin=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "graphile.sh: unknown argument $1" >&2; usage ;;
  esac
done
for v in "$jobs" "$rounds" "$concurrency" "$processes" "$poll_ms" "$timeout_s"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "graphile.sh: '$v' is not a positive integer" >&2; exit 2; }
done
[[ "$local_queue" =~ ^-?[0-9]+$ && "$batch_delay" =~ ^-?[0-9]+$ ]] \
  || { echo "graphile.sh: --local-queue/--batch-delay take integers (-1 disables)" >&2; exit 2; }
if [ "$local_queue" -gt 0 ] && [ "$local_queue" -le "$concurrency" ]; then
  local_queue=$((concurrency + 1)) # graphile warns (and slows down) below C
fi
pool_size=$(( concurrency + 2 > 10 ? concurrency + 2 : 10 ))
if [ -n "$json_out" ]; then
  case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
fi

# ---------------------------------------------------------------- install
mkdir -p "$dir"
installed_version() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' \
    "$dir/node_modules/graphile-worker/package.json"
}
if [ "$(installed_version)" != "$version" ]; then
  echo "installing graphile-worker@$version into $dir" >&2
  ( cd "$dir"
    [ -f package.json ] || npm init -y >/dev/null
    npm install --no-audit --no-fund --save-exact "graphile-worker@$version" >&2 )
fi
gw_version=$(installed_version)
[ "$gw_version" = "$version" ] || { echo "graphile.sh: install of graphile-worker@$version failed" >&2; exit 1; }

cat >"$dir/bench.js" <<'NODE'
// Written by taskq's benches/pg/graphile.sh; regenerated on every run.
//   node bench.js migrate URL
//   node bench.js coord URL N CONCURRENCY PROCESSES POOL LOCALQ BATCHDELAY POLLMS TIMEOUTS
//   (node bench.js child ... is forked by coord)
"use strict";
const { fork } = require("node:child_process");
const { performance } = require("node:perf_hooks");

async function load() {
  // import() works for both the CommonJS (<= 0.17) and ESM-only (0.18+) builds.
  const ns = await import("graphile-worker");
  const gw = ns.run ? ns : ns.default;
  const pgns = await import("pg");
  const pg = pgns.Client ? pgns : pgns.default;
  // Quiet logger: keep warnings and errors (e.g. pool-size warnings).
  const logger = new gw.Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`[graphile ${level}] ${message}`);
  });
  return { gw, pg, logger };
}

async function migrate(url) {
  const { gw, logger } = await load();
  await gw.runMigrations({ connectionString: url, logger });
}

async function child() {
  const [url, concurrency, pool, localQ, batchDelay] = process.argv.slice(3);
  const { gw, logger } = await load();
  const preset = { worker: {} };
  // Batching options exist from graphile-worker 0.17.0 on (WorkerOptions in
  // dist/index.d.ts); -1 disables them, as in graphile's own defaults.
  if (Number(localQ) > 0) preset.worker.localQueue = { size: Number(localQ) };
  if (Number(batchDelay) >= 0) {
    preset.worker.completeJobBatchDelay = Number(batchDelay);
    preset.worker.failJobBatchDelay = Number(batchDelay);
  }
  const options = {
    connectionString: url,
    concurrency: Number(concurrency),
    maxPoolSize: Number(pool),
    pollInterval: 100,
    noPreparedStatements: false,
    noHandleSignals: true,
    logger,
    crontab: "", // no crontab file lookup
    taskList: { noop: async () => {} },
    preset,
  };
  let runner = null, succeeded = 0, failed = 0;
  process.on("message", async (msg) => {
    if (msg === "go") {
      const t = performance.now();
      runner = await gw.run(options);
      runner.events.on("job:success", () => { succeeded++; });
      runner.events.on("job:error", () => { failed++; });
      process.send({ started_ms: performance.now() - t });
    } else if (msg === "stop") {
      if (runner) await runner.stop();
      process.send({ succeeded, failed }, () => process.exit(0));
    }
  });
  process.send("ready");
}

async function coord() {
  const [url, n, concurrency, processes, pool, localQ, batchDelay, pollMs, timeoutS] =
    process.argv.slice(3);
  const N = Number(n), P = Number(processes);
  const { pg } = await load();
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const count = async () =>
    Number((await db.query("select count(*) as c from graphile_worker._private_jobs")).rows[0].c);
  const before = await count();
  if (before !== N) throw new Error(`expected ${N} queued jobs, found ${before}`);

  const kids = [];
  for (let i = 0; i < P; i++) {
    const k = fork(__filename, ["child", url, concurrency, pool, localQ, batchDelay]);
    k.msgs = [];
    k.waiters = [];
    k.on("message", (m) => (k.waiters.length ? k.waiters.shift()(m) : k.msgs.push(m)));
    k.on("exit", (code) => { if (code) { console.error(`worker exited ${code}`); process.exit(1); } });
    kids.push(k);
  }
  const next = (k) => new Promise((r) => (k.msgs.length ? r(k.msgs.shift()) : k.waiters.push(r)));
  await Promise.all(kids.map(next)); // all "ready": Node booted, graphile-worker loaded

  const t0 = performance.now();
  kids.forEach((k) => k.send("go"));
  const startedP = Promise.all(kids.map(next));
  let left = N, elapsed = 0;
  const deadline = t0 + Number(timeoutS) * 1000;
  for (;;) {
    await new Promise((r) => setTimeout(r, Number(pollMs)));
    left = await count();
    elapsed = (performance.now() - t0) / 1000;
    if (left === 0 || performance.now() > deadline) break;
  }
  const started = await startedP;
  kids.forEach((k) => k.send("stop"));
  const stats = await Promise.all(kids.map(next));
  await db.end();
  const succeeded = stats.reduce((a, s) => a + s.succeeded, 0);
  const failed = stats.reduce((a, s) => a + s.failed, 0);
  console.log(JSON.stringify({
    jobs: N, left, seconds: elapsed, jobs_per_s: (N - left) / elapsed,
    succeeded, failed,
    worker_start_ms: Math.max(...started.map((s) => s.started_ms)),
  }));
  if (left !== 0) process.exit(3);
}

const mode = process.argv[2];
const main = { migrate: () => migrate(process.argv[3]), child, coord }[mode];
if (!main) { console.error(`bench.js: unknown mode ${mode}`); process.exit(2); }
main().catch((e) => { console.error(e); process.exit(1); });
NODE

# ---------------------------------------------------------------- database
base="${pg_admin%%\?*}"
query="${pg_admin#"$base"}"
base="${base%/*}"
dbname="taskq_graphile_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
url="$base/$dbname$query"
psql_admin() { psql "$pg_admin" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_db() { psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
  psql_admin -c "drop database if exists \"$dbname\" with (force)" >/dev/null 2>&1 \
    || echo "graphile.sh: could not drop database $dbname" >&2
}
psql_admin -c "create database \"$dbname\"" >/dev/null
trap cleanup EXIT

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' || true)
pg_version=$(psql_db -At -c 'show server_version')
echo "cpu: ${cpu:-unknown} ($(nproc) cores); node $(node --version); postgres $pg_version"
echo "graphile-worker $gw_version in $dir; database $dbname"
echo "settings: jobs=$jobs processes=$processes concurrency=$concurrency maxPoolSize=$pool_size" \
  "localQueue.size=$local_queue completeJobBatchDelay=$batch_delay failJobBatchDelay=$batch_delay" \
  "pollInterval=100 preparedStatements=on poll=${poll_ms}ms"

# ---------------------------------------------------------------- rounds
results=()
rates=()
for round in $(seq 1 "$rounds"); do
  (cd "$dir" && node bench.js migrate "$url")
  psql_db -At >/dev/null <<SQL
select count(*) from graphile_worker.add_jobs(array(
  select row('noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec
  from generate_series(1, $jobs)));
vacuum analyze graphile_worker._private_jobs;
checkpoint;
SQL
  line=$(cd "$dir" && node bench.js coord "$url" "$jobs" "$concurrency" "$processes" \
    "$pool_size" "$local_queue" "$batch_delay" "$poll_ms" "$timeout_s") || {
    echo "graphile.sh: round $round failed: $line" >&2; exit 1; }
  results+=("$line")
  read -r rate secs succ fail start_ms < <(node -e '
    const r = JSON.parse(process.argv[1]);
    console.log(r.jobs_per_s.toFixed(0), r.seconds.toFixed(3), r.succeeded, r.failed, r.worker_start_ms.toFixed(0));
  ' "$line")
  rates+=("$rate")
  echo "round $round: $jobs jobs in ${secs}s = $rate jobs/s" \
    "(worker start ${start_ms}ms; job:success events $succ, errors $fail)"
done

read -r median min max < <(printf '%s\n' "${rates[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
        printf "%.0f %.0f %.0f\n", m, v[1], v[NR] }')
echo "graphile-worker $gw_version: $jobs no-op jobs, $processes process(es) x concurrency $concurrency," \
  "median $median jobs/s over $rounds rounds [$min..$max] (cpu: ${cpu:-unknown})"

if [ -n "$json_out" ]; then
  {
    printf '{"engine":"graphile-worker","version":"%s","jobs":%s,"processes":%s,' \
      "$gw_version" "$jobs" "$processes"
    printf '"concurrency":%s,"max_pool_size":%s,"local_queue_size":%s,' \
      "$concurrency" "$pool_size" "$local_queue"
    printf '"complete_job_batch_delay_ms":%s,"fail_job_batch_delay_ms":%s,' "$batch_delay" "$batch_delay"
    printf '"poll_ms":%s,"cpu":"%s","nproc":%s,"node":"%s","postgres":"%s",' \
      "$poll_ms" "$cpu" "$(nproc)" "$(node --version)" "$pg_version"
    printf '"median_jobs_per_s":%s,"min_jobs_per_s":%s,"max_jobs_per_s":%s,"rounds":[' \
      "$median" "$min" "$max"
    (IFS=,; printf '%s' "${results[*]}")
    printf ']}\n'
  } >"$json_out"
  echo "wrote $json_out"
fi
