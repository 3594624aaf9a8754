//! [`Recorder`]: one worker's counters and histograms.
//!
//! Invariant: a recorder is written only by its own worker (live readers only
//! read its [`Tallies`]); shutdown merges
//! them, so the merged counters are the sums of the per-worker ones and each
//! latency histogram holds one sample per completed task.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use compact_str::CompactString;

use super::live::Tallies;
use crate::processor::ErrorClass;

/// One worker's counters and histograms. Written only by its worker.
///
/// The counters and histograms read live are the shared [`Tallies`]
/// (reached through `Deref`); what only the final report needs stays here.
pub(crate) struct Recorder {
    /// Counters and histograms, shared with live readers.
    pub(crate) live: Arc<Tallies>,
    /// Failures by (class, kind): final ones and retried ones alike.
    pub(crate) failures: BTreeMap<(ErrorClass, CompactString), u64>,
    /// Retries scheduled, by the attempt number that failed (1-based).
    pub(crate) retries_by_attempt: BTreeMap<u32, u64>,
    /// Σ time tasks waited in the retry queue, nanoseconds.
    pub(crate) retry_wait_ns: u128,
}

impl Deref for Recorder {
    type Target = Tallies;

    fn deref(&self) -> &Tallies {
        &self.live
    }
}

impl Recorder {
    /// A recorder whose tallies nobody else reads.
    pub(crate) fn new() -> Self {
        Recorder::with(Arc::default())
    }

    /// A recorder writing into `live`, which others may read.
    pub(crate) fn with(live: Arc<Tallies>) -> Self {
        Recorder {
            live,
            failures: BTreeMap::new(),
            retries_by_attempt: BTreeMap::new(),
            retry_wait_ns: 0,
        }
    }

    /// Records the end of a task's stay in the engine: one latency sample.
    #[inline]
    pub(crate) fn complete(&self, latency_ns: u64) {
        self.latency.record_owned(latency_ns);
        self.residence_ns.add(latency_ns);
    }

    /// Records the start of a processing attempt.
    #[inline]
    pub(crate) fn begin(&self) {
        self.begun.add(1);
    }

    /// Records one processing attempt's service time.
    #[inline]
    pub(crate) fn served(&self, service_ns: u64) {
        self.service.record_owned(service_ns);
        self.busy_ns.add(service_ns);
        self.attempts.add(1);
    }

    /// Counts a failed attempt by class and kind.
    pub(crate) fn failure(&mut self, class: ErrorClass, kind: &str) {
        *self
            .failures
            .entry((class, CompactString::from(kind)))
            .or_insert(0) += 1;
    }

    /// Adds `other` into `self` (both owned by the calling thread, or their
    /// owners joined).
    pub(crate) fn merge(&mut self, other: &Recorder) {
        let (a, b) = (&*self.live, &*other.live);
        for (x, y) in [
            (&a.succeeded, &b.succeeded),
            (&a.failed, &b.failed),
            (&a.duplicates, &b.duplicates),
            (&a.retried, &b.retried),
            (&a.dead_lettered, &b.dead_lettered),
            (&a.started, &b.started),
            (&a.begun, &b.begun),
            (&a.attempts, &b.attempts),
            (&a.steals, &b.steals),
            (&a.busy_ns, &b.busy_ns),
            (&a.residence_ns, &b.residence_ns),
            (&a.history_lookups, &b.history_lookups),
            (&a.history_hits, &b.history_hits),
        ] {
            x.add(y.get());
        }
        for (k, v) in &other.failures {
            *self.failures.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.retries_by_attempt {
            *self.retries_by_attempt.entry(*k).or_insert(0) += v;
        }
        self.retry_wait_ns += other.retry_wait_ns;
        let live = Arc::get_mut(&mut self.live).expect("a merged recorder is not shared");
        live.latency.add(&other.latency);
        live.service.add(&other.service);
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
        a.succeeded.add(3);
        b.succeeded.add(4);
        b.duplicates.add(1);
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
        assert_eq!(m.succeeded.get(), 7);
        assert_eq!(m.completed(), 8);
        assert_eq!(m.latency.len(), 8);
        assert_eq!(m.failures[&(ErrorClass::Transient, "timeout".into())], 2);
        let p = Percentiles::from_histogram(&m.latency.to_histogram());
        assert_eq!(p.count, 8);
        assert!((p.max - 5.0).abs() < 0.01, "{p:?}");
    }
}
