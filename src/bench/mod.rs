//! The benchmark harness behind `taskq bench`: taskq against the Python designs
//! it replaces ([`baseline`](crate::baseline)), on the same tasks and processors.
//!
//! # What one scenario run does
//!
//! 1. [`workload`] builds the tasks in memory (the project's generator, so the
//!    keys are `img/NNNNNN.jpg`) and the processor: `noop` ([`Noop`](crate::Noop)),
//!    `cpu` ([`CpuHash::for_micros(2.0)`](crate::CpuHash::for_micros)) or `sleep`
//!    ([`Simulated`](crate::Simulated) with `--latency-ms`). `dedup` runs
//!    `noop` tasks, `--duplicates` of them repeating an earlier key, through
//!    each engine's idempotency ([`dedup`]).
//! 2. For each repeat, every engine runs once, in turn (taskq, baseline,
//!    classic), so machine noise spreads over all engines alike. `cpu` also
//!    times all tasks on one thread in each repeat; the fastest of those
//!    passes is the work for parallel efficiency = work ÷ (cores used ×
//!    makespan), cores used = min(workers, cores). It also times the same
//!    tasks split statically over that many threads with no queue
//!    ([`workload::static_split_work_s`]): the machine's own loss when its
//!    cores are busy at once, which no engine can recover.
//! 3. [`driver`] runs one engine once: a fresh copy of the tasks is split among
//!    `P` producer threads, which wait on a barrier; the clock starts when they
//!    are released and stops when the last task has completed and the workers
//!    have exited. taskq producers use one [`Submitter`](crate::Submitter) each
//!    (`submit_iter`); baseline and classic producers append one task at a time,
//!    as the Python code did.
//!    Under `dedup`, each run gets a fresh SQLite file in a new temporary
//!    directory (under `$TMPDIR`), so every repeat starts from an empty
//!    history, and after the run the harness checks the file holds exactly
//!    one row per unique key (and that every unique key was processed once and
//!    every repeat detected): a run that fails the check fails the benchmark.
//! 4. [`suite`] aggregates the repeats (median, min and max) into an
//!    [`EngineSummary`] per engine, [`report`] prints the table and writes JSON,
//!    CSV and SVG plots ([`plot`]) under `results/`, and [`compare`] checks a
//!    run against a stored one and records it in `PERF.md`.
//!
//! # What is measured, and how alike
//!
//! - *Makespan*: barrier release → last completion (workers joined; for
//!   taskq, up to the report's own `elapsed_s`, before the report is built,
//!   as the other engines' latency bookkeeping also happens after the clock).
//!   *Throughput* = tasks ÷ makespan. Under `dedup` every submitted key
//!   counts (processed or detected as a duplicate), and the makespan ends when
//!   the last record is durably committed: taskq's `shutdown` returns only
//!   after its writer committed everything, and the Python designs commit
//!   each key before processing it.
//! - *Latency*: submit → completion, one sample per task. taskq measures it
//!   itself (its HDR histograms); for baseline and classic the producer stores
//!   a raw clock reading beside the task and the worker's observer takes one
//!   at completion, the same two clock reads taskq makes.
//! - *Queue depth*: tasks submitted and not yet completed (queued or
//!   running). Mean depth is Σ latency ÷ the time they were held in (Little's
//!   law; the makespan, plus the enqueue phase under `--queue-first`) for every
//!   engine. Max depth is taskq's admission high-water mark (which counts
//!   completions a worker has not released yet, and is capped at the task
//!   count), and for baseline and
//!   classic an exact sweep over the recorded submit and completion times.
//! - `--queue-first` queues every task before any processing starts. taskq's
//!   workers start with the engine, so its processor is wrapped in a gate that
//!   holds each worker on its first task until the batch is queued; baseline
//!   and classic spawn their workers only then. The clock starts when the gate
//!   opens (or the workers spawn); the enqueue phase is timed separately
//!   (`enqueue_s`). Capacity is raised to the task count so the batch fits.
//!   Latency still counts from submit, for every engine alike, so it includes
//!   the enqueue phase.

pub mod cli;
pub mod compare;
pub mod dedup;
pub mod driver;
pub mod ideal;
pub mod plot;
pub mod report;
pub mod suite;
pub mod workload;

use serde::{Deserialize, Serialize};

use crate::metrics::Percentiles;
pub use dedup::DedupDurability;
pub use workload::Workload;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A setting is out of range.
    #[error("invalid setting --{setting}: {message}")]
    Config {
        /// The setting, named as on the command line.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A `dedup` run's database does not hold what it must: the run did not
    /// deduplicate correctly, and its numbers mean nothing.
    #[error("dedup check failed for {engine}: {message}")]
    Verify {
        /// The engine whose run failed the check.
        engine: &'static str,
        /// What was wrong (and where the database was kept).
        message: String,
    },
    /// A `dedup` database could not be created or read.
    #[error("{context}: {cause}")]
    Db {
        /// What was being done (names the file).
        context: String,
        /// SQLite's error.
        cause: rusqlite::Error,
    },
    /// An engine or processor could not start.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// A file could not be read or written, or a thread not started.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A stored result file could not be parsed.
    #[error("{path}: not a taskq bench result: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The SVG being drawn.
        path: String,
        /// The drawing error.
        message: String,
    },
}

impl BenchError {
    pub(crate) fn config(setting: &'static str, message: impl Into<String>) -> Self {
        BenchError::Config {
            setting,
            message: message.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The engines a benchmark can run.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// This crate's engine.
    Taskq,
    /// The seed: a global lock around a list, processed under the lock.
    Baseline,
    /// A bounded `queue.Queue` feeding a fixed thread pool.
    Classic,
}

impl EngineKind {
    /// All engines, in run order.
    pub const ALL: [EngineKind; 3] = [EngineKind::Taskq, EngineKind::Baseline, EngineKind::Classic];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Taskq => "taskq",
            EngineKind::Baseline => "baseline",
            EngineKind::Classic => "classic",
        }
    }
}

/// One benchmark scenario: a workload, its size and the engines' settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// A short name, unique within a result file (`--compare` matches on it).
    pub name: String,
    /// What each task does.
    pub workload: Workload,
    /// Tasks per run.
    pub tasks: usize,
    /// Worker threads of every engine.
    pub workers: usize,
    /// Producer threads the tasks are split among.
    pub producers: usize,
    /// Bound of taskq and classic (the baseline has none).
    pub capacity: usize,
    /// Processing time of a `sleep` task, milliseconds.
    pub latency_ms: f64,
    /// Share of tasks repeating an earlier key (for `dedup`).
    pub duplicates: f64,
    /// Queue every task before processing starts.
    pub queue_first: bool,
    /// Runs per engine.
    pub repeat: usize,
    /// The engines compared.
    pub engines: Vec<EngineKind>,
    /// How taskq's producers submit.
    #[serde(default)]
    pub taskq_submit: driver::SubmitStyle,
    /// `dedup` only: how taskq makes its records durable.
    #[serde(default)]
    pub durability: DedupDurability,
    /// `sleep` only: injected transient failures and how they are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<Faults>,
}

/// Transient failures injected into a `sleep` scenario, and the backoff the
/// engines that retry wait before trying again.
///
/// taskq parks a failed task in its delay queue and lets the worker go on;
/// classic retries the way a Python pool worker wrapped in a retry decorator
/// does, sleeping in the worker; the baseline does not retry (a failed task
/// ends failed). Every engine draws the same failures: attempt `n` of a key
/// fails, or not, by the [`Simulated`](crate::Simulated) processor's seeded
/// draw, and the seed is the repeat's number, so each repeat fails different
/// keys.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Share of attempts that fail transiently, after their full latency.
    pub transient_rate: f64,
    /// Retries of a failed task (at most this + 1 attempts).
    pub max_retries: u32,
    /// Full-jitter exponential backoff: the delay after attempt `n` is uniform
    /// in `[0, base · 2^(n−1))`, milliseconds.
    pub backoff_base_ms: u64,
}

impl Faults {
    /// The failure-handling benchmark's setting: 10% of attempts fail
    /// transiently, retried with taskq's defaults (3 retries, 50 ms base).
    pub fn seed() -> Self {
        let policy = crate::RetryPolicy::default();
        Faults {
            transient_rate: 0.1,
            max_retries: policy.max_retries,
            backoff_base_ms: policy.backoff_base_ms,
        }
    }

    /// The retry policy of taskq (and of classic's in-worker retries) for the
    /// repeat seeded `seed`.
    pub fn policy(&self, seed: u64) -> crate::RetryPolicy {
        crate::RetryPolicy {
            max_retries: self.max_retries,
            backoff_base_ms: self.backoff_base_ms,
            seed,
            ..crate::RetryPolicy::default()
        }
    }
}

impl Scenario {
    /// The seed's scenario: 100 sleep tasks of 30 ms, 8 workers, 100 producers,
    /// capacity 200, every engine, 5 repeats.
    pub fn seed() -> Self {
        Scenario {
            name: "seed".into(),
            workload: Workload::Sleep,
            tasks: 100,
            workers: 8,
            producers: 100,
            capacity: 200,
            latency_ms: 30.0,
            duplicates: 0.0,
            queue_first: false,
            repeat: 5,
            engines: EngineKind::ALL.to_vec(),
            taskq_submit: driver::SubmitStyle::Batch,
            durability: DedupDurability::Batch,
            faults: None,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`BenchError::Config`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), BenchError> {
        let range = |name: &'static str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(BenchError::config(
                    name,
                    format!("must be between {lo} and {hi}, got {v}"),
                ))
            }
        };
        range("tasks", self.tasks, 1, 100_000_000)?;
        range("workers", self.workers, 1, crate::config::MAX_WORKERS)?;
        range("producers", self.producers, 1, 1024)?;
        range("capacity", self.capacity, 1, crate::config::MAX_CAPACITY)?;
        range("repeat", self.repeat, 1, 1000)?;
        if !self.latency_ms.is_finite() || !(0.0..=60_000.0).contains(&self.latency_ms) {
            return Err(BenchError::config(
                "latency-ms",
                format!("must be between 0 and 60000, got {}", self.latency_ms),
            ));
        }
        if !(0.0..=1.0).contains(&self.duplicates) {
            return Err(BenchError::config(
                "duplicates",
                format!("must be a share between 0 and 1, got {}", self.duplicates),
            ));
        }
        if self.engines.is_empty() {
            return Err(BenchError::config("engine", "name at least one engine"));
        }
        if let Some(f) = &self.faults {
            if self.workload != Workload::Sleep {
                return Err(BenchError::config(
                    "transient-rate",
                    format!(
                        "injected failures need the sleep workload, not {}",
                        self.workload.name()
                    ),
                ));
            }
            if !(0.0..1.0).contains(&f.transient_rate) {
                return Err(BenchError::config(
                    "transient-rate",
                    format!("must be a share in [0, 1), got {}", f.transient_rate),
                ));
            }
            // The library names the field; a scenario names its flags.
            f.policy(0)
                .validate()
                .map_err(|e| crate::flags::named_by_flag(e.into()))?;
        }
        Ok(())
    }

    /// The capacity the engines run with: raised to the task count under
    /// `queue_first`, so the whole batch fits.
    pub fn effective_capacity(&self) -> usize {
        if self.queue_first {
            self.capacity.max(self.tasks)
        } else {
            self.capacity
        }
    }

    /// `ceil(tasks / workers) × latency`, seconds: the makespan of a perfect
    /// pool on a `sleep` workload. `None` for other workloads.
    pub fn ideal_makespan_s(&self) -> Option<f64> {
        (self.workload == Workload::Sleep)
            .then(|| self.tasks.div_ceil(self.workers) as f64 * self.latency_ms / 1e3)
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} x{} tasks, {} workers, {} producers, capacity {}",
            self.name,
            self.workload.name(),
            self.tasks,
            self.workers,
            self.producers,
            self.effective_capacity()
        );
        if self.workload == Workload::Sleep {
            s.push_str(&format!(", {} ms each", self.latency_ms));
        }
        if self.duplicates > 0.0 {
            s.push_str(&format!(", {:.0}% duplicates", self.duplicates * 100.0));
        }
        if self.workload == Workload::Dedup {
            s.push_str(&format!(", taskq durability {}", self.durability.name()));
        }
        if let Some(f) = &self.faults {
            s.push_str(&format!(
                ", {}% of attempts fail transiently (up to {} retries, backoff base {} ms)",
                f.transient_rate * 100.0,
                f.max_retries,
                f.backoff_base_ms
            ));
        }
        if self.queue_first {
            s.push_str(", queued first");
        }
        s.push_str(&format!(", {} repeats", self.repeat));
        s
    }
}

/// What one run of one engine measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Tasks handed to the engine.
    pub submitted: u64,
    /// Tasks that completed (one latency sample each).
    pub completed: u64,
    /// Completed successfully.
    pub succeeded: u64,
    /// Completed with an error.
    pub failed: u64,
    /// Attempts that failed transiently and were tried again (taskq: from its
    /// delay queue; classic: after a sleep in the worker).
    #[serde(default)]
    pub retried: u64,
    /// Barrier release (or gate opening) → last completion, seconds.
    pub makespan_s: f64,
    /// Completed ÷ makespan.
    pub throughput_per_s: f64,
    /// Submit → completion.
    pub latency_ms: Percentiles,
    /// Highest number of tasks held at once.
    pub depth_max: usize,
    /// Time-weighted mean number held: Σ latency ÷ the time they were held in
    /// (the makespan, plus the enqueue phase under `--queue-first`).
    pub depth_mean: f64,
    /// `--queue-first` only: time to queue the batch, seconds.
    pub enqueue_s: Option<f64>,
    /// Completed as duplicates of a key already claimed (`dedup`; included
    /// in `completed`, not in `succeeded` or `failed`).
    #[serde(default)]
    pub duplicates: u64,
    /// `dedup` only: rows found in the database after the run, checked to be
    /// exactly one per unique key.
    #[serde(default)]
    pub db_rows: Option<u64>,
    /// The first failed task's error, if any task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// With [`faults`](Scenario::faults): the makespan of an ideal pool on
    /// this run's failures ([`ideal::ideal_makespan_s`]), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_makespan_s: Option<f64>,
    /// `dedup`, taskq only: what its record writer did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<WriterStats>,
}

/// What taskq's record writer did in one `dedup` run (from its report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Records committed.
    pub records: u64,
    /// Mean time of one commit, milliseconds.
    pub commit_ms_mean: f64,
    /// 99th percentile of one commit, milliseconds.
    pub commit_ms_p99: f64,
    /// Keys evicted from the hot cache (their repeats are looked up in SQLite).
    pub evictions: u64,
    /// History lookups in SQLite (hot-cache misses the Bloom filter let through).
    pub lookups: u64,
}

impl WriterStats {
    /// Σ commit time, seconds: the part of the makespan the writer spent
    /// inside transactions.
    pub fn commit_s(&self) -> f64 {
        self.commit_ms_mean * self.batches as f64 / 1e3
    }
}

impl Sample {
    /// Failed ÷ completed (0 when nothing completed).
    pub fn error_rate(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.failed as f64 / self.completed as f64
        }
    }
}

/// Median, minimum and maximum over repeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stat {
    /// The statistics of `values` (all zero when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Latency statistics over repeats, milliseconds: each is the median, min and
/// max of that statistic across the runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// The runs' means.
    pub mean: Stat,
    /// The runs' medians.
    pub p50: Stat,
    /// The runs' 95th percentiles.
    pub p95: Stat,
    /// The runs' 99th percentiles.
    pub p99: Stat,
}

/// One engine's numbers over all repeats of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSummary {
    /// The engine.
    pub engine: EngineKind,
    /// Runs aggregated.
    pub runs: usize,
    /// Tasks per second.
    pub throughput_per_s: Stat,
    /// Seconds.
    pub makespan_s: Stat,
    /// Latency, milliseconds (medians over runs).
    pub latency_ms: LatencySummary,
    /// Failed ÷ completed, over all runs.
    pub error_rate: f64,
    /// Highest depth over all runs.
    pub depth_max: usize,
    /// Median of the runs' mean depths.
    pub depth_mean: f64,
    /// `sleep` only: `ceil(tasks/workers) × latency`, seconds.
    pub ideal_makespan_s: Option<f64>,
    /// `sleep` only: median makespan ÷ ideal makespan.
    pub makespan_vs_ideal: Option<f64>,
    /// Median throughput ÷ the baseline's median throughput (when it ran).
    pub vs_baseline: Option<f64>,
    /// `cpu` only: single-thread work time (the fastest of the repeats' passes)
    /// ÷ (cores used × makespan), per run; cores used = min(workers, cores).
    pub parallel_efficiency: Option<Stat>,
    /// `--queue-first` only: seconds to queue the batch.
    pub enqueue_s: Option<Stat>,
    /// `dedup` only: tasks completed as duplicates, per run.
    #[serde(default)]
    pub duplicates: Option<Stat>,
    /// With [`faults`](Scenario::faults): each run's makespan ÷ an ideal
    /// pool's on the same failures (1.0: the engine cost nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_ideal_on_failures: Option<Stat>,
    /// Every run, in order.
    pub samples: Vec<Sample>,
}

/// A scenario with its per-engine summaries and raw samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// What ran.
    pub scenario: Scenario,
    /// One row per engine, in run order.
    pub engines: Vec<EngineSummary>,
    /// `cpu` only: all tasks' processing on one thread, seconds, per repeat.
    pub work_s: Option<Stat>,
    /// `cpu` only: the same processing split statically over min(workers,
    /// cores) threads with no queue, seconds, per repeat (see
    /// [`static_split_work_s`](workload::static_split_work_s)): what the
    /// machine gives with no engine at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_work_s: Option<Stat>,
    /// `dedup` only: one 4 KiB write + `fdatasync` in the databases'
    /// directory, milliseconds, probed before each repeat (the Python designs'
    /// throughput is a few syncs per key, group commit's one per batch).
    #[serde(default)]
    pub fsync_ms: Option<Stat>,
}

impl ScenarioResult {
    /// The summary of `engine`, if it ran.
    pub fn engine(&self, engine: EngineKind) -> Option<&EngineSummary> {
        self.engines.iter().find(|e| e.engine == engine)
    }
}

/// The machine a result file was measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    /// `std::env::consts::OS`.
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
}

impl Machine {
    /// This machine.
    pub fn current() -> Self {
        Machine {
            cores: available_cores(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

/// Cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A result file: `taskq bench` writes one per invocation (one scenario, or one
/// per worker count with `--workers-sweep`, or the whole suite).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchFile {
    /// The suite's name, for `--suite` runs.
    pub suite: Option<String>,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// `git rev-parse --short HEAD`, when available.
    pub commit: Option<String>,
    /// The command line that produced it.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// The scenarios, in run order.
    pub scenarios: Vec<ScenarioResult>,
}

impl BenchFile {
    /// The scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.scenario.name == name)
    }

    /// Reads a result file.
    ///
    /// # Errors
    ///
    /// [`BenchError::Io`] or [`BenchError::Parse`].
    pub fn load(path: &std::path::Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|source| BenchError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `git rev-parse --short HEAD`, if git and a repository are there.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn stat_median_min_max() {
        let s = Stat::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of([4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Stat::of([]), Stat::default());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
    }

    #[test]
    fn ideal_makespan_of_the_seed() {
        let s = Scenario::seed();
        assert!((s.ideal_makespan_s().unwrap() - 0.39).abs() < 1e-9);
    }
}
