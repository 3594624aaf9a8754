//! Workloads: what the benchmark's tasks do, and the tasks themselves.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{BenchError, Scenario};
use crate::generate::{generate_tasks, GenerateOptions, OutputFormat};
use taskq::processor::{Attempt, CpuHash, Noop, Processor, Simulated, SimulatedConfig};
use taskq::task::Task;

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
    /// No-op tasks with `--duplicates` repeated keys, through each engine's
    /// idempotency: taskq's claim table and SQLite store, the Python designs'
    /// per-task SQLite `INSERT OR IGNORE` ([`SeedDb`](crate::baseline::SeedDb)).
    Dedup,
    /// No-op tasks through the queue on PostgreSQL: `taskq worker`
    /// processes (`--nodes`) against `classic-pg` ([`crate::pg`]).
    #[serde(rename = "pg-noop")]
    PgNoop,
    /// `--latency-ms` sleeps through the queue on PostgreSQL.
    #[serde(rename = "pg-sleep")]
    PgSleep,
}

impl Workload {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Cpu => "cpu",
            Workload::Sleep => "sleep",
            Workload::Dedup => "dedup",
            Workload::PgNoop => "pg-noop",
            Workload::PgSleep => "pg-sleep",
        }
    }

    /// Whether the workload runs on PostgreSQL ([`crate::pg`]).
    pub fn on_postgres(self) -> bool {
        matches!(self, Workload::PgNoop | Workload::PgSleep)
    }

    /// The share of duplicate keys a scenario of this workload has unless
    /// told otherwise: 0.3 for `dedup`, none for the others.
    pub fn default_duplicates(self) -> f64 {
        match self {
            Workload::Dedup => 0.3,
            Workload::Noop
            | Workload::Cpu
            | Workload::Sleep
            | Workload::PgNoop
            | Workload::PgSleep => 0.0,
        }
    }

    /// The processor every engine runs for this workload (one instance, shared:
    /// `cpu` is calibrated once). `dedup` runs [`Noop`]: what is measured is
    /// the deduplication and its durable record. `seed` seeds the `sleep`
    /// processor's injected failures ([`Scenario::faults`]).
    ///
    /// # Errors
    ///
    /// A bad `sleep` latency or failure rate.
    pub fn processor(
        self,
        scenario: &Scenario,
        seed: u64,
    ) -> Result<Arc<dyn Processor>, BenchError> {
        Ok(match self {
            Workload::Noop | Workload::Dedup | Workload::PgNoop => Arc::new(Noop),
            Workload::Cpu => Arc::new(CpuHash::for_micros(2.0)),
            Workload::Sleep | Workload::PgSleep => Arc::new(simulated(scenario, seed)?),
        })
    }
}

/// The `sleep` workload's processor: `latency_ms` per attempt, and the
/// scenario's injected failures drawn from `seed`.
///
/// # Errors
///
/// A bad latency or failure rate.
pub fn simulated(scenario: &Scenario, seed: u64) -> Result<Simulated, BenchError> {
    Ok(Simulated::new(SimulatedConfig {
        latency_ms: scenario.latency_ms,
        transient_rate: scenario.faults.map_or(0.0, |f| f.transient_rate),
        seed,
        ..SimulatedConfig::default()
    })
    .map_err(taskq::Error::from)?)
}

/// The scenario's tasks, built in memory by the project's generator (seed 42):
/// `img/NNNNNN.jpg` keys, exactly `round(duplicates × tasks)` of them
/// repeating an earlier key.
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

/// Processes every task once on `threads` threads with no queue at all:
/// thread `i` takes the `i`-th of `threads` contiguous, equal shares,
/// released together. Returns the seconds until the last thread finished.
///
/// What that many threads give with no engine at all: no scheduling cost,
/// and no rebalancing either (a thread slowed by noise is not helped by the
/// other). Compared with [`single_thread_work_s`] it shows what the machine
/// itself loses when its cores are busy at once (a lower clock boost, shared
/// caches).
pub fn static_split_work_s(processor: &dyn Processor, tasks: &[Task], threads: usize) -> f64 {
    let threads = threads.clamp(1, tasks.len().max(1));
    let attempt = Attempt::first();
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = &tasks[i * tasks.len() / threads..(i + 1) * tasks.len() / threads];
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for t in share {
                        let _ = std::hint::black_box(processor.process(t, &attempt));
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("a static-split thread panicked");
        }
        start.elapsed().as_secs_f64()
    })
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

#[cfg(test)]
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
    fn the_static_split_processes_every_task_once() {
        use std::sync::Mutex;
        struct Seen(Mutex<Vec<String>>);
        impl Processor for Seen {
            fn process(
                &self,
                task: &Task,
                _: &Attempt,
            ) -> Result<taskq::processor::Output, taskq::processor::ProcessError> {
                self.0.lock().unwrap().push(task.image_key().to_string());
                Ok(Default::default())
            }
        }
        let tasks = build_tasks(&Scenario {
            tasks: 101,
            ..Scenario::seed()
        });
        for threads in [1, 2, 3, 200] {
            let seen = Seen(Mutex::new(Vec::new()));
            assert!(static_split_work_s(&seen, &tasks, threads) > 0.0);
            let mut got = seen.0.into_inner().unwrap();
            got.sort();
            let mut want: Vec<String> = tasks.iter().map(|t| t.image_key().to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{threads} threads");
        }
    }

    #[test]
    fn dedup_tasks_repeat_the_asked_share_of_keys() {
        let tasks = build_tasks(&Scenario {
            workload: Workload::Dedup,
            tasks: 1_000,
            duplicates: 0.3,
            ..Scenario::seed()
        });
        let unique: std::collections::HashSet<&str> =
            tasks.iter().map(|t| t.idempotency_key()).collect();
        assert_eq!(tasks.len() - unique.len(), 300);
    }
}
