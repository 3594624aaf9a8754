//! The report types: everything a run measured, as the JSON report carries it.
//!
//! Invariant: these types are plain data (serialised and deserialised as
//! they are); the engine fills them once, from the merged recorders, at
//! shutdown. The processor's own section ([`ProcessorReport`]) is the
//! processor module's type.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::processor::{ErrorClass, ProcessorReport};

/// Mean and percentiles of a distribution, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample (clamped at one hour).
    pub max: f64,
}

impl Percentiles {
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Task counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    /// Submission attempts: `admitted + rejected`.
    pub submitted: u64,
    /// Tasks the engine took in.
    pub admitted: u64,
    /// Submissions refused: engine full in reject mode, or already closed.
    pub rejected: u64,
    /// Records of the input refused by validation (never submitted).
    pub invalid: u64,
    /// Tasks whose processing began (the claim of their key was won).
    pub started: u64,
    /// Processing attempts, retries included.
    pub attempts: u64,
    /// Tasks that completed successfully.
    pub succeeded: u64,
    /// Tasks that completed failed without a dead-letter store to hold them.
    pub failed: u64,
    /// Tasks completed as duplicates of a key in flight or already done.
    pub duplicates: u64,
    /// Retries scheduled (a task retried twice counts twice).
    pub retried: u64,
    /// Tasks moved to the dead-letter queue.
    pub dead_lettered: u64,
}

impl Counts {
    /// Tasks that completed one way or another.
    pub fn completed(&self) -> u64 {
        self.succeeded + self.failed + self.duplicates + self.dead_lettered
    }
}

/// Why submissions were refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rejections {
    /// The engine was at capacity (reject mode, or `try_submit`).
    pub full: u64,
    /// The engine had stopped admitting.
    pub closed: u64,
}

/// Failed attempts of one class and kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailureCount {
    /// `transient` or `permanent`.
    pub class: ErrorClass,
    /// The processor's kind string (`timeout`, `unavailable`, `panic`, …).
    pub kind: String,
    /// How many attempts failed so.
    pub count: u64,
}

/// Queue depth over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// The configured bound.
    pub capacity: usize,
    /// Highest depth reached.
    pub max: usize,
    /// Time-weighted mean depth (Little's law over the run).
    pub mean: f64,
}

/// Enqueue and dequeue rates over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Rates {
    /// Admissions per second.
    pub enqueue_per_s: f64,
    /// Completions per second.
    pub dequeue_per_s: f64,
}

/// One worker's share of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct WorkerReport {
    /// Worker index, 0-based.
    pub index: usize,
    /// The core it was pinned to, if pinned.
    pub core: Option<usize>,
    /// Tasks it completed.
    pub tasks: u64,
    /// Processing attempts it made.
    pub attempts: u64,
    /// Batches it stole from sibling workers.
    pub steals: u64,
    /// Time executing tasks ÷ the worker's lifetime.
    pub busy_ratio: f64,
}

/// Retry activity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RetryStats {
    /// Retries scheduled, by the attempt number that failed (`"1"`, `"2"`, …).
    pub by_attempt: BTreeMap<String, u64>,
    /// Total time tasks spent waiting for a retry, seconds.
    pub wait_s: f64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// All input was processed.
    #[default]
    Completed,
    /// A signal stopped admission early; admitted work was drained.
    Interrupted,
    /// An error stopped the run (see `errors`); admitted work was drained.
    Failed,
}

/// A record of the input that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InvalidTask {
    /// 1-based line of the record.
    pub line: u64,
    /// 0-based position of the record in the input.
    pub index: u64,
    /// What was wrong.
    pub error: String,
}

/// Everything a run measured. Serialises to the JSON report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// How the run ended.
    pub status: RunStatus,
    /// The signal that interrupted the run, if one did (`SIGINT`, `SIGTERM`).
    pub interrupted_by: Option<String>,
    /// Task counts.
    pub counts: Counts,
    /// Why submissions were refused.
    pub rejections: Rejections,
    /// Failed attempts by class and kind.
    pub failures: Vec<FailureCount>,
    /// Retries.
    pub retries: RetryStats,
    /// Submit → completion, milliseconds; one sample per completed task.
    pub latency_ms: Percentiles,
    /// Processing start → end, milliseconds; one sample per attempt.
    pub service_ms: Percentiles,
    /// Completed tasks per second of `elapsed_s`.
    pub throughput_per_s: f64,
    /// Engine start → drained, seconds.
    pub elapsed_s: f64,
    /// Queue depth.
    pub queue_depth: QueueDepth,
    /// Enqueue/dequeue rates.
    pub rates: Rates,
    /// Per-worker numbers.
    pub workers: Vec<WorkerReport>,
    /// Input records refused by validation (the first 1,000; `counts.invalid` has all).
    pub invalid_tasks: Vec<InvalidTask>,
    /// Run-level errors (input stopped mid-stream, storage failures).
    pub errors: Vec<String>,
    /// Idempotency and persistence, when a store is used.
    pub store: Option<StoreReport>,
    /// What the processor reported about its own work, if it reports any
    /// ([`Processor::report`](crate::Processor::report)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<ProcessorReport>,
    /// Every setting used.
    pub config: serde_json::Value,
}

/// Idempotency and persistence numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct StoreReport {
    /// The database.
    pub path: String,
    /// `batch` or `group-commit`.
    pub durability: String,
    /// The processor whose records the run read and wrote
    /// ([`Processor::name`](crate::Processor::name)).
    #[serde(default)]
    pub processor: String,
    /// This processor's succeeded keys in the history when the run started.
    pub history_keys: u64,
    /// Succeeded records of other processors when the run started: they do
    /// not count as done for this one (`""`: records written before
    /// processors were recorded).
    #[serde(default)]
    pub other_processors: Vec<crate::idempotency::ProcessorRecords>,
    /// Records of an earlier run's recovery file (`<db>.unsaved.ndjson`),
    /// committed before the run started.
    #[serde(default)]
    pub replayed: u64,
    /// Memory of the Bloom filter over recorded keys, bytes.
    pub bloom_bytes: usize,
    /// Committed keys the hot cache keeps at most.
    pub cache_capacity: usize,
    /// Entries in the hot cache at the end.
    pub cache_entries: usize,
    /// Hot-cache misses looked up in the store (the Bloom filter said "maybe").
    pub lookups: u64,
    /// Lookups that found the key done by this processor (tasks done in an
    /// earlier run, completed as duplicates).
    pub lookup_hits: u64,
    /// Tasks completed by the writer after their commit (group commit).
    pub completed_by_writer: u64,
    /// The writer's numbers.
    pub writer: crate::idempotency::writer::WriterReport,
}

/// Input records kept in a report's `invalid_tasks`, at most.
pub const MAX_INVALID_LISTED: usize = 1000;

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Adds a refused input record (counted always, listed up to a cap).
    pub fn add_invalid(&mut self, line: u64, index: u64, error: impl ToString) {
        self.counts.invalid += 1;
        if self.invalid_tasks.len() < MAX_INVALID_LISTED {
            self.invalid_tasks.push(InvalidTask {
                line,
                index,
                error: error.to_string(),
            });
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn invalid_list_is_capped_but_counted() {
        let mut r = Report::default();
        for i in 0..(MAX_INVALID_LISTED as u64 + 5) {
            r.add_invalid(i + 1, i, "bad");
        }
        assert_eq!(r.counts.invalid, MAX_INVALID_LISTED as u64 + 5);
        assert_eq!(r.invalid_tasks.len(), MAX_INVALID_LISTED);
    }
}
