//! What a benchmark measured and where it ran: one engine's run
//! ([`Sample`]), its summary over repeats ([`EngineSummary`], [`Stat`]),
//! a scenario's result, the machine, and the results file ([`BenchFile`]).

use serde::{Deserialize, Serialize};

use taskq::metrics::Percentiles;

use crate::{BenchError, EngineKind, Scenario};

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
    /// this run's failures ([`ideal::ideal_makespan_s`](crate::ideal::ideal_makespan_s)), seconds.
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
    /// taskq only: its median throughput ÷ the best peer's (`mpsc`,
    /// `channel`, `rayon`; when one ran), with that peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_best_peer: Option<(EngineKind, f64)>,
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
    /// [`static_split_work_s`](crate::workload::static_split_work_s)): what the
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
    /// The CPU's model name (`/proc/cpuinfo`), empty where unknown (and in
    /// result files written before it was recorded).
    #[serde(default)]
    pub cpu: String,
}

impl Machine {
    /// This machine.
    pub fn current() -> Self {
        Machine {
            cores: available_cores(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpu: cpu_model(),
        }
    }
}

/// The first `model name` of `/proc/cpuinfo`, or empty.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
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

#[cfg(test)]
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
}
