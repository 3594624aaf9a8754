//! Per-stage time and byte counters that worker threads add to concurrently.
//!
//! Each stage has its own cache line of three atomics (total, count, max);
//! a worker adds to them once per stage per task with `Relaxed` read-modify-
//! writes — no lock, and at a few atomic operations per image (milliseconds
//! of work) no contention worth measuring. Nothing orders these counters with
//! other memory: they are read once, after the workers have been joined (the
//! join is the synchronisation).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use super::report::{ProcessorReport, StageReport};

#[derive(Default)]
struct Cell {
    /// Σ nanoseconds. Written by workers, read by `report`.
    total_ns: AtomicU64,
    /// Runs of the stage. Written by workers, read by `report`.
    count: AtomicU64,
    /// Longest run, nanoseconds. Written by workers, read by `report`.
    max_ns: AtomicU64,
}

/// Counters for a fixed list of stages, plus items and bytes: what a
/// processor with stages (read, decode, resize, …) puts in its
/// [`ProcessorReport`] ([`Processor::report`](crate::Processor::report)).
///
/// # Examples
///
/// ```
/// use taskq::processor::stages::StageStats;
/// let stats = StageStats::new(&["fetch", "transform"]);
/// stats.add(0, 2_000_000); // fetch took 2 ms
/// stats.add(1, 500_000);
/// stats.read(4096);
/// stats.item();
/// let report = stats.report("mine/v1");
/// assert_eq!(report.items, 1);
/// assert_eq!(report.stages[0].name, "fetch");
/// assert_eq!(report.stages[0].total_ms, 2.0);
/// ```
pub struct StageStats {
    names: &'static [&'static str],
    cells: Box<[CachePadded<Cell>]>,
    /// Items produced. Written by workers, read by `report`.
    items: CachePadded<AtomicU64>,
    /// Bytes read from storage. Written by workers, read by `report`.
    bytes_read: AtomicU64,
    /// Bytes written to storage. Written by workers, read by `report`.
    bytes_written: AtomicU64,
}

impl StageStats {
    /// Zeroed counters for the stages `names`, in pipeline order.
    pub fn new(names: &'static [&'static str]) -> Self {
        StageStats {
            names,
            cells: names.iter().map(|_| CachePadded::default()).collect(),
            items: CachePadded::default(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }

    /// Adds one run of stage `index` (into the names given to
    /// [`new`](StageStats::new)) that took `ns` nanoseconds.
    ///
    /// # Panics
    ///
    /// If `index` is not a stage's index.
    pub fn add(&self, index: usize, ns: u64) {
        let cell = &self.cells[index];
        cell.total_ns.fetch_add(ns, Relaxed);
        cell.count.fetch_add(1, Relaxed);
        cell.max_ns.fetch_max(ns, Relaxed);
    }

    /// Counts `bytes` read from storage.
    pub fn read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Relaxed);
    }

    /// Counts `bytes` written to storage.
    pub fn wrote(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Relaxed);
    }

    /// Counts one item produced.
    pub fn item(&self) {
        self.items.fetch_add(1, Relaxed);
    }

    /// The counters so far, as a report (`items_per_s` left for the caller).
    pub fn report(&self, name: &str) -> ProcessorReport {
        let ms = |ns: u64| ns as f64 / 1e6;
        ProcessorReport {
            name: name.into(),
            items: self.items.load(Relaxed),
            items_per_s: 0.0,
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            stages: self
                .names
                .iter()
                .zip(self.cells.iter())
                .map(|(name, c)| {
                    let count = c.count.load(Relaxed);
                    let total = c.total_ns.load(Relaxed);
                    StageReport {
                        name: (*name).into(),
                        count,
                        total_ms: ms(total),
                        mean_ms: if count == 0 {
                            0.0
                        } else {
                            ms(total) / count as f64
                        },
                        max_ms: ms(c.max_ns.load(Relaxed)),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn concurrent_adds_sum_up() {
        let stats = StageStats::new(&["a", "b"]);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let stats = &stats;
                s.spawn(move || {
                    for i in 0..1000u64 {
                        stats.add(0, 1_000);
                        stats.add(1, i + t);
                        stats.read(10);
                        stats.wrote(1);
                        stats.item();
                    }
                });
            }
        });
        let r = stats.report("x");
        assert_eq!(r.items, 4000);
        assert_eq!((r.bytes_read, r.bytes_written), (40_000, 4000));
        assert_eq!(r.stages[0].count, 4000);
        assert!((r.stages[0].total_ms - 4.0).abs() < 1e-9);
        assert!((r.stages[0].mean_ms - 0.001).abs() < 1e-12);
        assert!((r.stages[1].max_ms - 1002.0 / 1e6).abs() < 1e-12);
    }
}
