//! The benchmark harness behind `taskq bench`: taskq against the Python designs
//! it replaces ([`baseline`]), on the same tasks and processors.
//!
//! # What one scenario run does
//!
//! 1. [`workload`] builds the tasks in memory (the project's generator, so the
//!    keys are `img/NNNNNN.jpg`) and the processor: `noop` ([`Noop`](taskq::Noop)),
//!    `cpu` ([`CpuHash::for_micros(2.0)`](taskq::CpuHash::for_micros)) or `sleep`
//!    ([`Simulated`](taskq::Simulated) with `--latency-ms`). `dedup` runs
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
//!    have exited. taskq producers use one [`Submitter`](taskq::Submitter) each
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
//!
//! [`faultproxy`] puts a delay (or 503s, or a cut) in front of an S3 API
//! server, for the S3 benchmarks (`examples/fault-proxy.rs`) and tests.

#![warn(missing_docs)]

pub mod baseline;
pub mod cli;
pub mod compare;
pub mod dedup;
pub mod driver;
pub mod faultproxy;
mod gate;
pub mod generate;
pub mod ideal;
pub mod peers;
pub mod pg;
pub mod plot;
pub mod report;
pub mod result;
pub mod suite;
pub mod workload;

use serde::{Deserialize, Serialize};

pub use dedup::DedupDurability;
pub use result::{
    available_cores, git_commit, today, BenchFile, EngineSummary, LatencySummary, Machine, Sample,
    ScenarioResult, Stat, WriterStats,
};
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
    Engine(#[from] taskq::Error),
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
    /// Peer: threads sharing one `std::sync::mpsc` receiver.
    Mpsc,
    /// Peer: threads sharing a bounded `crossbeam-channel`.
    Channel,
    /// Peer: `rayon::spawn` per task under a semaphore.
    Rayon,
}

impl EngineKind {
    /// taskq and the Python designs it replaces, in run order.
    pub const ALL: [EngineKind; 3] = [EngineKind::Taskq, EngineKind::Baseline, EngineKind::Classic];

    /// The designs a Rust user would write instead (see [`peers`]).
    pub const PEERS: [EngineKind; 3] = [EngineKind::Mpsc, EngineKind::Channel, EngineKind::Rayon];

    /// Every engine: taskq, the Python designs, the peers.
    pub const EVERY: [EngineKind; 6] = [
        EngineKind::Taskq,
        EngineKind::Baseline,
        EngineKind::Classic,
        EngineKind::Mpsc,
        EngineKind::Channel,
        EngineKind::Rayon,
    ];

    /// Whether this is one of the [`PEERS`](Self::PEERS).
    pub fn is_peer(self) -> bool {
        Self::PEERS.contains(&self)
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Taskq => "taskq",
            EngineKind::Baseline => "baseline",
            EngineKind::Classic => "classic",
            EngineKind::Mpsc => "mpsc",
            EngineKind::Channel => "channel",
            EngineKind::Rayon => "rayon",
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
/// fails, or not, by the [`Simulated`](taskq::Simulated) processor's seeded
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
        let policy = taskq::RetryPolicy::default();
        Faults {
            transient_rate: 0.1,
            max_retries: policy.max_retries,
            backoff_base_ms: policy.backoff_base_ms,
        }
    }

    /// The retry policy of taskq (and of classic's in-worker retries) for the
    /// repeat seeded `seed`.
    pub fn policy(&self, seed: u64) -> taskq::RetryPolicy {
        taskq::RetryPolicy {
            max_retries: self.max_retries,
            backoff_base_ms: self.backoff_base_ms,
            seed,
            ..taskq::RetryPolicy::default()
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
            engines: EngineKind::EVERY.to_vec(),
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
        range("workers", self.workers, 1, taskq::config::MAX_WORKERS)?;
        range("producers", self.producers, 1, 1024)?;
        range("capacity", self.capacity, 1, taskq::config::MAX_CAPACITY)?;
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
            // The library names the field; the command line maps it to
            // its flag (`BenchError::Engine`).
            f.policy(0)
                .validate()
                .map_err(|e| BenchError::Engine(e.into()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_makespan_of_the_seed() {
        let s = Scenario::seed();
        assert!((s.ideal_makespan_s().unwrap() - 0.39).abs() < 1e-9);
    }
}
