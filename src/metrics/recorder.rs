//! [`Recorder`]: one worker's counters and histograms.
//!
//! Invariant: a recorder is written only by its own worker; shutdown merges
//! them, so the merged counters are the sums of the per-worker ones and each
//! latency histogram holds one sample per completed task.

use std::collections::BTreeMap;

use compact_str::CompactString;

use super::samples::Samples;
use crate::processor::ErrorClass;

/// One worker's counters and histograms. Written only by its worker.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) duplicates: u64,
    pub(crate) retried: u64,
    pub(crate) dead_lettered: u64,
    /// Tasks whose processing began (claims won), first attempts only.
    pub(crate) started: u64,
    /// Processing attempts, retries included.
    pub(crate) attempts: u64,
    /// Batches this worker stole from sibling workers.
    pub(crate) steals: u64,
    /// Nanoseconds spent executing tasks.
    pub(crate) busy_ns: u64,
    /// Σ (completion − submit) over completed tasks, for Little's law.
    pub(crate) residence_ns: u128,
    /// Failures by (class, kind): final ones and retried ones alike.
    pub(crate) failures: BTreeMap<(ErrorClass, CompactString), u64>,
    /// Retries scheduled, by the attempt number that failed (1-based).
    pub(crate) retries_by_attempt: BTreeMap<u32, u64>,
    /// Σ time tasks waited in the retry queue, nanoseconds.
    pub(crate) retry_wait_ns: u128,
    /// Hot-cache misses the Bloom filter could not rule out (store lookups).
    pub(crate) history_lookups: u64,
    /// Lookups that found the key recorded.
    pub(crate) history_hits: u64,
    pub(crate) latency: Samples,
    pub(crate) service: Samples,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder {
            succeeded: 0,
            failed: 0,
            duplicates: 0,
            retried: 0,
            dead_lettered: 0,
            started: 0,
            attempts: 0,
            steals: 0,
            busy_ns: 0,
            residence_ns: 0,
            failures: BTreeMap::new(),
            retries_by_attempt: BTreeMap::new(),
            retry_wait_ns: 0,
            history_lookups: 0,
            history_hits: 0,
            latency: Samples::new(),
            service: Samples::new(),
        }
    }

    /// Tasks this recorder saw complete (one histogram sample each).
    pub(crate) fn completed(&self) -> u64 {
        self.succeeded + self.failed + self.duplicates + self.dead_lettered
    }

    /// Records the end of a task's stay in the engine: one latency sample.
    #[inline]
    pub(crate) fn complete(&mut self, latency_ns: u64) {
        self.latency.record(latency_ns);
        self.residence_ns += u128::from(latency_ns);
    }

    /// Records one processing attempt's service time.
    #[inline]
    pub(crate) fn served(&mut self, service_ns: u64) {
        self.service.record(service_ns);
        self.busy_ns += service_ns;
        self.attempts += 1;
    }

    /// Counts a failed attempt by class and kind.
    pub(crate) fn failure(&mut self, class: ErrorClass, kind: &str) {
        *self
            .failures
            .entry((class, CompactString::from(kind)))
            .or_insert(0) += 1;
    }

    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Recorder) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.duplicates += other.duplicates;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.started += other.started;
        self.attempts += other.attempts;
        self.steals += other.steals;
        self.busy_ns += other.busy_ns;
        self.residence_ns += other.residence_ns;
        for (k, v) in &other.failures {
            *self.failures.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.retries_by_attempt {
            *self.retries_by_attempt.entry(*k).or_insert(0) += v;
        }
        self.retry_wait_ns += other.retry_wait_ns;
        self.history_lookups += other.history_lookups;
        self.history_hits += other.history_hits;
        self.latency.add(&other.latency);
        self.service.add(&other.service);
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::metrics::Percentiles;

    #[test]
    fn merge_adds_counts_and_samples() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.succeeded = 3;
        b.succeeded = 4;
        b.duplicates = 1;
        for ns in [1_000, 2_000, 3_000] {
            a.complete(ns);
        }
        for ns in [5_000_000, 6_000, 7_000, 8_000, 9_000] {
            b.complete(ns);
        }
        a.failure(ErrorClass::Transient, "timeout");
        b.failure(ErrorClass::Transient, "timeout");
        let mut m = Recorder::new();
        m.merge(&a);
        m.merge(&b);
        assert_eq!(m.succeeded, 7);
        assert_eq!(m.completed(), 8);
        assert_eq!(m.latency.len(), 8);
        assert_eq!(m.failures[&(ErrorClass::Transient, "timeout".into())], 2);
        let p = Percentiles::from_histogram(&m.latency.to_histogram());
        assert_eq!(p.count, 8);
        assert!((p.max - 5.0).abs() < 0.01, "{p:?}");
    }
}
