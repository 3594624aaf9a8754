//! [`Tallies`]: the counters and histograms one thread records into and any
//! thread may read while it runs, and [`Tally`], one such counter.
//!
//! Invariant: each tally has one writer, the thread that owns the recorder
//! (a worker, or the writer thread in group-commit mode). It adds with a
//! relaxed load and a relaxed store, which compile to the plain increment a
//! `u64` field would (no locked read-modify-write); a reader's relaxed load
//! sees a value the writer stored. Nothing synchronises on a tally, so they
//! are `std` atomics even under loom: the models check what the engine
//! decides, and no decision reads a tally.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::samples::Samples;

/// A counter with one writer and any number of live readers.
///
/// Memory ordering: relaxed both ways. A reader learns a count, never that
/// anything else happened; the merge at shutdown reads tallies after joining
/// their writers, which orders everything.
#[derive(Default)]
pub(crate) struct Tally(AtomicU64);

impl Tally {
    /// Adds `n`. Only the owning thread calls it.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The count now.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// What one thread records that is read live: outcome counters, work
/// counters and the two histograms. Written only by its owner.
#[derive(Default)]
pub(crate) struct Tallies {
    pub(crate) succeeded: Tally,
    pub(crate) failed: Tally,
    pub(crate) duplicates: Tally,
    pub(crate) retried: Tally,
    pub(crate) dead_lettered: Tally,
    /// Tasks whose processing began (claims won), first attempts only.
    pub(crate) started: Tally,
    /// Processing attempts begun (before the processor runs).
    pub(crate) begun: Tally,
    /// Processing attempts ended, retries included.
    pub(crate) attempts: Tally,
    /// Batches this worker stole from sibling workers.
    pub(crate) steals: Tally,
    /// Nanoseconds spent executing tasks.
    pub(crate) busy_ns: Tally,
    /// Σ (completion − submit) over completed tasks, nanoseconds (for
    /// Little's law, and the latency histogram's sum).
    pub(crate) residence_ns: Tally,
    /// Hot-cache misses the Bloom filter could not rule out (store lookups).
    pub(crate) history_lookups: Tally,
    /// Lookups that found the key recorded.
    pub(crate) history_hits: Tally,
    /// Submit → completion, one sample per completed task.
    pub(crate) latency: Samples,
    /// Start → end of each attempt.
    pub(crate) service: Samples,
}

impl Tallies {
    /// Tasks completed (one latency sample each).
    pub(crate) fn completed(&self) -> u64 {
        self.succeeded.get() + self.failed.get() + self.duplicates.get() + self.dead_lettered.get()
    }

    /// Whether the owner is inside a processor call now (a racy view).
    pub(crate) fn busy(&self) -> bool {
        // `attempts` first: the owner adds to `begun` before `attempts`, so
        // a read in this order errs towards busy, never below zero.
        let ended = self.attempts.get();
        self.begun.get() > ended
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_reader_sees_the_owner_s_counts_while_it_records() {
        let t = Arc::new(Tallies::default());
        let owner = {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u64 {
                    t.succeeded.add(1);
                    t.latency.record_owned(i + 1);
                }
            })
        };
        let mut last = 0;
        while !owner.is_finished() {
            let now = t.succeeded.get();
            assert!(now >= last, "a tally never goes back: {now} after {last}");
            last = now;
        }
        owner.join().unwrap();
        assert_eq!(t.succeeded.get(), 100_000);
        assert_eq!(t.latency.len(), 100_000);
        assert_eq!(t.completed(), 100_000);
    }

    #[test]
    fn busy_is_begun_and_not_ended() {
        let t = Tallies::default();
        assert!(!t.busy());
        t.begun.add(1);
        assert!(t.busy());
        t.attempts.add(1);
        assert!(!t.busy());
    }
}
