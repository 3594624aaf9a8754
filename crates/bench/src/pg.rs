//! `taskq bench --workload pg-noop|pg-sleep`: the queue on PostgreSQL, with
//! `taskq worker` processes as nodes on this machine (sharing its cores with
//! the server), against `classic-pg`, the hand-written queue most teams
//! start with.
//!
//! # What one run measures
//!
//! Each run gets a fresh database on the server (`taskq_bench_…`, dropped
//! after), with `--tasks` tasks enqueued before the clock starts. Then:
//!
//! - **taskq**: `--nodes` worker processes (`taskq worker --exit-when-empty`,
//!   `--workers` threads and `--capacity` each) drain the queue;
//! - **classic-pg**: `--nodes × --workers` connections, each repeating
//!   `BEGIN; SELECT … FOR UPDATE SKIP LOCKED LIMIT 1; (the job); UPDATE …;
//!   COMMIT` until no task is left.
//!
//! The clock runs from just before the nodes start to the last task's
//! `finalized_at` (the server's clock for both). Reported per run: jobs/s,
//! statements per job (counted by the nodes: claims, write-backs, heartbeats,
//! rescue rounds, `BEGIN`/`COMMIT`), WAL bytes per job
//! (`pg_current_wal_lsn()` before and after, the whole server).
//!
//! # Latency at a given load
//!
//! After the drains, for each node count, the nodes run on an empty queue
//! while an open-loop producer enqueues at `--pg-load` (default 0.5) of the
//! median taskq rate measured for that count, in 10 ms batches, for
//! `--pg-load-seconds`. Insert→start latency is `leased_at − created_at` of
//! tasks that succeeded at their first attempt (p50, p99, max).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use taskq::Task;

use crate::result::{git_commit, today, Machine};

/// The engines of a PostgreSQL run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgEngine {
    /// `taskq worker` processes.
    Taskq,
    /// One job per transaction, `FOR UPDATE SKIP LOCKED LIMIT 1`.
    ClassicPg,
}

impl PgEngine {
    fn name(self) -> &'static str {
        match self {
            PgEngine::Taskq => "taskq",
            PgEngine::ClassicPg => "classic-pg",
        }
    }
}

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct PgBench {
    /// `pg-noop` or `pg-sleep`.
    pub workload: String,
    /// The server, as a URL to a database the benchmark may connect to and
    /// create databases from (the runs' databases are its siblings).
    #[serde(skip)]
    pub admin_url: String,
    /// The `taskq` binary the nodes run.
    pub taskq_bin: PathBuf,
    /// Tasks per run.
    pub tasks: usize,
    /// Worker threads per node (classic-pg: connections per node).
    pub workers: usize,
    /// Each node's capacity.
    pub capacity: usize,
    /// `pg-sleep`: the sleep per task, ms.
    pub latency_ms: f64,
    /// Node counts, one set of runs each.
    pub nodes: Vec<usize>,
    /// Runs per engine and node count.
    pub repeat: usize,
    /// Engines to run.
    pub engines: Vec<PgEngine>,
    /// The latency runs' load, as a share of the measured peak (0: none).
    pub load: f64,
    /// How long each latency run produces.
    pub load_seconds: f64,
    /// Extra flags for every `taskq worker`.
    pub worker_flags: Vec<String>,
}

/// One drain.
#[derive(Clone, Debug, Serialize)]
pub struct PgRun {
    /// Which engine.
    pub engine: PgEngine,
    /// Nodes.
    pub nodes: usize,
    /// Tasks drained.
    pub tasks: usize,
    /// From the nodes' start to the last task's completion.
    pub seconds: f64,
    /// `tasks / seconds`.
    pub jobs_per_s: f64,
    /// Statements the nodes sent, per task.
    pub statements_per_job: f64,
    /// WAL the server wrote during the run, per task.
    pub wal_bytes_per_job: f64,
}

/// Median and range of one engine at one node count.
#[derive(Clone, Debug, Serialize)]
pub struct PgSummary {
    /// Which engine.
    pub engine: PgEngine,
    /// Nodes.
    pub nodes: usize,
    /// Median jobs/s of the runs.
    pub jobs_per_s: f64,
    /// Slowest run.
    pub min: f64,
    /// Fastest run.
    pub max: f64,
    /// Median statements per job.
    pub statements_per_job: f64,
    /// Median WAL bytes per job.
    pub wal_bytes_per_job: f64,
}

/// One latency run.
#[derive(Clone, Debug, Serialize)]
pub struct PgLatency {
    /// Nodes.
    pub nodes: usize,
    /// The producer's rate.
    pub offered_per_s: f64,
    /// Tasks measured (succeeded at their first attempt).
    pub tasks: i64,
    /// Insert→start, median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// A result file of a PostgreSQL run.
#[derive(Clone, Debug, Serialize)]
pub struct PgBenchFile {
    /// UTC date.
    pub date: String,
    /// `git rev-parse --short HEAD`.
    pub commit: Option<String>,
    /// The command line.
    pub command: String,
    /// Where it ran (the server on the same machine).
    pub machine: Machine,
    /// The server's `server_version`.
    pub server: String,
    /// The settings.
    pub bench: PgBench,
    /// Every drain, in run order.
    pub runs: Vec<PgRun>,
    /// Per engine and node count.
    pub summary: Vec<PgSummary>,
    /// The latency runs.
    pub latency: Vec<PgLatency>,
}

fn admin(url: &str) -> anyhow::Result<postgres::Client> {
    postgres::Client::connect(url, postgres::NoTls)
        .with_context(|| format!("cannot connect to {}", describe(url)))
}

fn describe(url: &str) -> String {
    taskq_pg::describe_url(url).unwrap_or_else(|_| "the PostgreSQL URL".into())
}

/// A database of one run, dropped at the end.
struct RunDb {
    admin_url: String,
    name: String,
    url: String,
}

impl RunDb {
    fn create(admin_url: &str) -> anyhow::Result<RunDb> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("taskq_bench_{}_{nanos}", std::process::id());
        admin(admin_url)?.batch_execute(&format!("CREATE DATABASE {name}"))?;
        // The nodes get a URL: the admin URL with the run's database.
        let url = match admin_url.rsplit_once('/') {
            Some((prefix, last)) if admin_url.starts_with("postgres") && !last.contains('=') => {
                let query = last.split_once('?').map(|(_, q)| format!("?{q}"));
                format!("{prefix}/{name}{}", query.unwrap_or_default())
            }
            _ => format!("{admin_url} dbname={name}"),
        };
        Ok(RunDb {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }
}

impl Drop for RunDb {
    fn drop(&mut self) {
        if let Ok(mut c) = admin(&self.admin_url) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

impl PgBench {
    fn processor(&self) -> &'static str {
        if self.workload == "pg-sleep" {
            "simulated"
        } else {
            "noop"
        }
    }

    /// Fills `db` with the run's tasks (not timed).
    fn fill(&self, db: &RunDb, n: usize) -> anyhow::Result<()> {
        let mut q = taskq_pg::Queue::connect(&db.url)?;
        taskq_pg::migrate(&mut q)?;
        let mut e = taskq_pg::Enqueuer::new(&mut q, self.processor(), 1, 5000);
        for i in 0..n {
            e.push(Task::new(
                &format!("img/{i:08}.jpg"),
                "200x200".parse().context("size")?,
            )?)?;
        }
        e.finish()?;
        Ok(())
    }

    fn node(
        &self,
        db: &RunDb,
        dir: &Path,
        k: usize,
        exit_when_empty: bool,
    ) -> anyhow::Result<Child> {
        let mut cmd = Command::new(&self.taskq_bin);
        cmd.args(["worker", "--pg", &db.url, "--processor", self.processor()])
            .args(["--workers", &self.workers.to_string()])
            .args(["--capacity", &self.capacity.to_string()])
            .args([
                "--report",
                &dir.join(format!("node{k}.json")).display().to_string(),
            ]);
        if self.processor() == "simulated" {
            cmd.args(["--latency-ms", &self.latency_ms.to_string()]);
        }
        if exit_when_empty {
            cmd.arg("--exit-when-empty");
        }
        cmd.args(&self.worker_flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn()
            .with_context(|| format!("cannot start {}", self.taskq_bin.display()))
    }

    fn wait_nodes(nodes: Vec<Child>) -> anyhow::Result<()> {
        for node in nodes {
            let o = node.wait_with_output()?;
            if !matches!(o.status.code(), Some(0) | Some(143)) {
                bail!(
                    "a node failed ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        Ok(())
    }

    /// One drain of `engine` with `nodes` nodes.
    fn drain(&self, engine: PgEngine, nodes: usize) -> anyhow::Result<PgRun> {
        let db = RunDb::create(&self.admin_url)?;
        self.fill(&db, self.tasks)?;
        let dir = tempdir()?;
        let mut c = admin(&db.url)?;
        c.batch_execute("VACUUM ANALYZE taskq_tasks")?;
        c.batch_execute("CHECKPOINT")?;
        let row = c.query_one("SELECT pg_current_wal_lsn()::text, clock_timestamp()", &[])?;
        let (lsn, t0): (String, std::time::SystemTime) = (row.get(0), row.get(1));
        let statements = match engine {
            PgEngine::Taskq => {
                let children = (0..nodes)
                    .map(|k| self.node(&db, &dir.0, k, true))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Self::wait_nodes(children)?;
                let mut total = 0u64;
                for k in 0..nodes {
                    let path = dir.0.join(format!("node{k}.json"));
                    let r: serde_json::Value = serde_json::from_str(
                        &std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    )?;
                    total += r["statements"].as_u64().unwrap_or(0);
                }
                total
            }
            PgEngine::ClassicPg => self.classic(&db, nodes * self.workers)?,
        };
        let row = c.query_one(
            "SELECT count(*) FILTER (WHERE state = 'succeeded'), max(finalized_at),
                    pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8
             FROM taskq_tasks",
            &[&lsn],
        )?;
        let (done, t1, wal): (i64, std::time::SystemTime, f64) =
            (row.get(0), row.get(1), row.get(2));
        if done != self.tasks as i64 {
            bail!(
                "{}: {done} of {} tasks succeeded",
                engine.name(),
                self.tasks
            );
        }
        let seconds = t1.duration_since(t0).unwrap_or_default().as_secs_f64();
        let n = self.tasks as f64;
        Ok(PgRun {
            engine,
            nodes,
            tasks: self.tasks,
            seconds,
            jobs_per_s: n / seconds.max(1e-9),
            statements_per_job: statements as f64 / n,
            wal_bytes_per_job: wal / n,
        })
    }

    /// classic-pg: `threads` connections, one job per transaction. Returns
    /// the statements sent.
    fn classic(&self, db: &RunDb, threads: usize) -> anyhow::Result<u64> {
        let sleep = (self.processor() == "simulated")
            .then(|| Duration::from_secs_f64(self.latency_ms / 1000.0));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let url = db.url.clone();
                let processor = self.processor();
                std::thread::spawn(move || -> anyhow::Result<u64> {
                    let mut c = admin(&url)?;
                    let mut sent = 0u64;
                    loop {
                        let mut tx = c.transaction()?;
                        let row = tx.query_opt(
                            "SELECT id, image_key, size FROM taskq_tasks
                             WHERE state = 'available' AND processor = $1 AND run_at <= now()
                             ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                            &[&processor],
                        )?;
                        sent += 2;
                        let Some(row) = row else {
                            tx.commit()?;
                            return Ok(sent + 1);
                        };
                        let id: i64 = row.get(0);
                        if let Some(d) = sleep {
                            std::thread::sleep(d);
                        }
                        tx.execute(
                            "UPDATE taskq_tasks SET state = 'succeeded', attempt = attempt + 1,
                                 leased_at = now(), finalized_at = now()
                             WHERE id = $1",
                            &[&id],
                        )?;
                        tx.commit()?;
                        sent += 2;
                    }
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| anyhow::anyhow!("a classic-pg thread panicked"))??;
        }
        Ok(total)
    }

    /// Insert→start latency with `nodes` nodes at `rate` tasks/s.
    fn latency(&self, nodes: usize, rate: f64) -> anyhow::Result<PgLatency> {
        let db = RunDb::create(&self.admin_url)?;
        self.fill(&db, 0)?;
        let dir = tempdir()?;
        let children = (0..nodes)
            .map(|k| self.node(&db, &dir.0, k, false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut c = admin(&db.url)?;
        let started = Instant::now();
        while c
            .query_one(
                "SELECT count(*) FROM taskq_nodes WHERE state = 'alive'",
                &[],
            )?
            .get::<_, i64>(0)
            < nodes as i64
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the nodes did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut q = taskq_pg::Queue::connect(&db.url)?;
        let mut e = taskq_pg::Enqueuer::new(&mut q, self.processor(), 1, usize::MAX);
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed().as_secs_f64() < self.load_seconds {
            let due = (start.elapsed().as_secs_f64() * rate) as usize;
            for i in sent..due {
                e.push(Task::new(
                    &format!("img/{i:08}.jpg"),
                    "200x200".parse().context("size")?,
                )?)?;
            }
            e.flush()?;
            sent = due.max(sent);
            std::thread::sleep(Duration::from_millis(10));
        }
        e.finish()?;
        let drained = Instant::now();
        while c
            .query_one(
                "SELECT count(*) FROM taskq_tasks WHERE state IN ('available', 'running')",
                &[],
            )?
            .get::<_, i64>(0)
            > 0
        {
            if drained.elapsed() > Duration::from_secs(120) {
                bail!("the nodes did not drain the queue");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for child in &children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        Self::wait_nodes(children)?;
        let row = c.query_one(
            "SELECT count(*),
                    coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY w), 0),
                    coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY w), 0),
                    coalesce(max(w), 0)
             FROM (SELECT extract(epoch FROM leased_at - created_at)::float8 * 1000 AS w
                   FROM taskq_tasks WHERE state = 'succeeded' AND attempt = 1) s",
            &[],
        )?;
        Ok(PgLatency {
            nodes,
            offered_per_s: rate,
            tasks: row.get(0),
            p50_ms: row.get(1),
            p99_ms: row.get(2),
            max_ms: row.get(3),
        })
    }

    /// Runs everything, logging progress to `log`.
    ///
    /// # Errors
    ///
    /// The server cannot be reached, a node fails, or a run does not
    /// complete every task.
    pub fn run(&self, command: String, log: &mut dyn Write) -> anyhow::Result<PgBenchFile> {
        if self.nodes.is_empty() || self.nodes.contains(&0) {
            bail!("invalid setting --nodes: node counts must be at least 1");
        }
        if !(0.0..1.0).contains(&self.load) {
            bail!(
                "invalid setting --pg-load: must be in [0, 1), got {}",
                self.load
            );
        }
        let server: String = admin(&self.admin_url)?
            .query_one("SHOW server_version", &[])?
            .get(0);
        let mut runs = Vec::new();
        let mut summary = Vec::new();
        for &nodes in &self.nodes {
            for &engine in &self.engines {
                let mut mine = Vec::new();
                for round in 0..self.repeat.max(1) {
                    let r = self.drain(engine, nodes)?;
                    let _ = writeln!(
                        log,
                        "  {} nodes={nodes} round {}: {:.0} jobs/s, {:.3} statements/job, {:.0} WAL bytes/job",
                        engine.name(),
                        round + 1,
                        r.jobs_per_s,
                        r.statements_per_job,
                        r.wal_bytes_per_job
                    );
                    mine.push(r.clone());
                    runs.push(r);
                }
                let med = |f: fn(&PgRun) -> f64| {
                    let mut v: Vec<f64> = mine.iter().map(f).collect();
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                summary.push(PgSummary {
                    engine,
                    nodes,
                    jobs_per_s: med(|r| r.jobs_per_s),
                    min: mine
                        .iter()
                        .map(|r| r.jobs_per_s)
                        .fold(f64::INFINITY, f64::min),
                    max: mine.iter().map(|r| r.jobs_per_s).fold(0.0, f64::max),
                    statements_per_job: med(|r| r.statements_per_job),
                    wal_bytes_per_job: med(|r| r.wal_bytes_per_job),
                });
            }
        }
        let mut latency = Vec::new();
        if self.load > 0.0 && self.engines.contains(&PgEngine::Taskq) {
            for s in summary.iter().filter(|s| s.engine == PgEngine::Taskq) {
                let rate = s.jobs_per_s * self.load;
                let l = self.latency(s.nodes, rate)?;
                let _ = writeln!(
                    log,
                    "  latency nodes={} at {rate:.0}/s: p50 {:.1} ms, p99 {:.1} ms ({} tasks)",
                    s.nodes, l.p50_ms, l.p99_ms, l.tasks
                );
                latency.push(l);
            }
        }
        Ok(PgBenchFile {
            date: today(),
            commit: git_commit(),
            command,
            machine: Machine::current(),
            server,
            bench: self.clone(),
            runs,
            summary,
            latency,
        })
    }
}

impl PgBenchFile {
    /// The table: one row per engine and node count, and the latency runs.
    pub fn render(&self) -> String {
        let mut s =
            format!(
            "{} × {} tasks, {} workers and capacity {} per node, PostgreSQL {} on {} ({} cores)\n",
            self.bench.workload,
            self.bench.tasks,
            self.bench.workers,
            self.bench.capacity,
            self.server,
            if self.machine.cpu.is_empty() { "?" } else { &self.machine.cpu },
            self.machine.cores
        );
        s.push_str(
            "engine       nodes    jobs/s (median)   [min – max]        stmts/job   WAL B/job\n",
        );
        for r in &self.summary {
            s.push_str(&format!(
                "{:<12} {:>5} {:>17.0}   [{:.0} – {:.0}] {:>12.3} {:>11.0}\n",
                r.engine.name(),
                r.nodes,
                r.jobs_per_s,
                r.min,
                r.max,
                r.statements_per_job,
                r.wal_bytes_per_job
            ));
        }
        for n in &self.bench.nodes {
            let get = |e| {
                self.summary
                    .iter()
                    .find(|r| r.engine == e && r.nodes == *n)
                    .map(|r| r.jobs_per_s)
            };
            if let (Some(t), Some(c)) = (get(PgEngine::Taskq), get(PgEngine::ClassicPg)) {
                s.push_str(&format!("taskq ÷ classic-pg at {n} nodes: ×{:.1}\n", t / c));
            }
        }
        for l in &self.latency {
            s.push_str(&format!(
                "insert→start, {} nodes at {:.0} tasks/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} tasks)\n",
                l.nodes, l.offered_per_s, l.p50_ms, l.p99_ms, l.max_ms, l.tasks
            ));
        }
        s
    }
}

/// A temporary folder for the nodes' reports, removed on drop.
struct TempDir(PathBuf);

fn tempdir() -> anyhow::Result<TempDir> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let p = std::env::temp_dir().join(format!("taskq-pg-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    Ok(TempDir(p))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
