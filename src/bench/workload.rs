//! Workloads: what the benchmark's tasks do, and the tasks themselves.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{BenchError, Scenario};
use crate::generate::{generate_tasks, GenerateOptions, OutputFormat};
use crate::processor::{Attempt, CpuHash, Noop, Processor, Simulated, SimulatedConfig};
use crate::task::Task;

/// What each task does.
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
pub enum Workload {
    /// Nothing: the engines' own overhead.
    Noop,
    /// About 2 µs of hashing per task (CPU-bound).
    Cpu,
    /// The seed's blocking I/O: a `--latency-ms` sleep per task.
    Sleep,
    /// Tasks with `--duplicates` repeated keys through the idempotency store
    /// (taskq) and per-task SQLite `INSERT OR IGNORE` (classic). Refused until
    /// the idempotency store lands.
    Dedup,
}

impl Workload {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Cpu => "cpu",
            Workload::Sleep => "sleep",
            Workload::Dedup => "dedup",
        }
    }

    /// Whether this build can run the workload.
    ///
    /// # Errors
    ///
    /// [`BenchError::DedupUnavailable`] for `dedup`.
    pub fn check_available(self) -> Result<(), BenchError> {
        match self {
            Workload::Dedup => Err(BenchError::DedupUnavailable),
            Workload::Noop | Workload::Cpu | Workload::Sleep => Ok(()),
        }
    }

    /// The processor every engine runs for this workload (one instance, shared:
    /// `cpu` is calibrated once).
    ///
    /// # Errors
    ///
    /// [`BenchError::DedupUnavailable`], or a bad `sleep` latency.
    pub fn processor(self, scenario: &Scenario) -> Result<Arc<dyn Processor>, BenchError> {
        self.check_available()?;
        Ok(match self {
            Workload::Noop => Arc::new(Noop),
            Workload::Cpu => Arc::new(CpuHash::for_micros(2.0)),
            Workload::Sleep => Arc::new(Simulated::new(SimulatedConfig {
                latency_ms: scenario.latency_ms,
                ..SimulatedConfig::default()
            })?),
            Workload::Dedup => unreachable!("refused by check_available"),
        })
    }
}

/// The scenario's tasks, built in memory by the project's generator (seed 42):
/// `img/NNNNNN.jpg` keys, `duplicates` of them repeating an earlier key.
pub fn build_tasks(scenario: &Scenario) -> Vec<Task> {
    generate_tasks(&GenerateOptions {
        count: scenario.tasks as u64,
        format: OutputFormat::Ndjson,
        duplicates: scenario.duplicates,
        seed: 42,
    })
    .collect()
}

/// Processes every task once on the calling thread; returns the seconds it
/// took (the single-thread work time of the batch).
pub fn single_thread_work_s(processor: &dyn Processor, tasks: &[Task]) -> f64 {
    let attempt = Attempt::first();
    let start = Instant::now();
    for t in tasks {
        let _ = std::hint::black_box(processor.process(t, &attempt));
    }
    start.elapsed().as_secs_f64()
}

/// Splits `tasks` into `parts` runs of nearly equal length (the first
/// `len % parts` get one more); empty runs when `parts > len`.
pub fn split(mut tasks: Vec<Task>, parts: usize) -> Vec<Vec<Task>> {
    let n = tasks.len();
    let mut out = Vec::with_capacity(parts);
    // Split from the back so each split_off is O(part), not O(n).
    for i in (0..parts).rev() {
        let start = i * n / parts;
        out.push(tasks.split_off(start));
    }
    out.reverse();
    out
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_task_in_order() {
        let tasks = build_tasks(&Scenario {
            tasks: 10,
            ..Scenario::seed()
        });
        let parts = split(tasks.clone(), 3);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 4]);
        assert_eq!(parts.concat(), tasks);
        let many = split(tasks, 12);
        assert_eq!(many.len(), 12);
        assert_eq!(many.iter().map(Vec::len).sum::<usize>(), 10);
    }

    #[test]
    fn dedup_is_refused_by_name() {
        let e = Workload::Dedup.check_available().unwrap_err().to_string();
        assert!(e.contains("dedup needs the idempotency store"), "{e}");
    }
}
