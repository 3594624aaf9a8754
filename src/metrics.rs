//! Per-worker recorders, merged once at the end into the [`Report`].
//!
//! Each worker owns a `Recorder`: plain counters and two sample counts in HDR
//! histogram layout (`Samples`: latency submit→completion, service
//! start→end), touched only by that worker, so recording costs a few
//! nanoseconds and no shared cache line. Shutdown joins
//! the workers and merges their recorders (`Recorder::merge`); the merged
//! counters are by construction the sums of the per-worker ones, and each
//! histogram holds one sample per completed task.
//!
//! The time-weighted mean queue depth comes from Little's law: the integral of
//! depth over time is the sum of the time each task spent in the engine, so
//! `mean depth = Σ residence / elapsed`, exact and free to compute.

use std::collections::BTreeMap;

use compact_str::CompactString;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::processor::ErrorClass;

/// Longest latency a histogram records exactly: one hour, in nanoseconds.
/// Longer samples are clamped to it (and the report's `max` says so).
const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Significant figures the histograms keep.
#[cfg(not(feature = "loom"))]
const SIGNIFICANT_FIGURES: u8 = 3;
/// Under loom, 1: the models count samples rather than read their values, and a
/// three-figure histogram (256 KiB of counters, zeroed for every recorder in
/// every explored execution) would take most of the models' run time.
#[cfg(feature = "loom")]
const SIGNIFICANT_FIGURES: u8 = 1;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_FIGURES)
        .expect("static histogram bounds are valid")
}

/// The bucket layout of [`new_histogram`]'s histograms (lowest value 1, so
/// unit magnitude 0), as HdrHistogram computes it.
mod layout {
    use super::{MAX_TRACKABLE_NS, SIGNIFICANT_FIGURES};

    /// Sub-buckets per bucket: the power of two that holds 2 × 10^figures.
    const SUB_BUCKET_COUNT: u64 = {
        let largest_single_unit = 2 * 10u64.pow(SIGNIFICANT_FIGURES as u32);
        largest_single_unit.next_power_of_two()
    };
    pub(super) const HALF_MAGNITUDE: u32 = SUB_BUCKET_COUNT.trailing_zeros() - 1;
    pub(super) const HALF: u64 = SUB_BUCKET_COUNT / 2;
    const MASK: u64 = SUB_BUCKET_COUNT - 1;
    const LEADING_ZERO_BASE: u32 = 64 - HALF_MAGNITUDE - 1;

    /// Counters needed to reach `MAX_TRACKABLE_NS`.
    pub(super) const LEN: usize = {
        let mut buckets = 1u64;
        let mut untrackable = SUB_BUCKET_COUNT;
        while untrackable <= MAX_TRACKABLE_NS {
            untrackable <<= 1;
            buckets += 1;
        }
        ((buckets + 1) * HALF) as usize
    };

    /// The counter `value` (1 ..= `MAX_TRACKABLE_NS`) belongs to.
    #[inline]
    pub(super) const fn index_for(value: u64) -> usize {
        let bucket = LEADING_ZERO_BASE - (value | MASK).leading_zeros();
        let sub_bucket = value >> bucket;
        (((bucket as u64 + 1) << HALF_MAGNITUDE) + sub_bucket - HALF) as usize
    }

    /// The highest value the last counter covers; `saturating_record`
    /// records values up to here as they are and clamps larger ones to
    /// `MAX_TRACKABLE_NS`.
    pub(super) const LAST: u64 = value_for(LEN) - 1;

    /// The lowest value counted by counter `index`.
    pub(super) const fn value_for(index: usize) -> u64 {
        let index = index as u64;
        let mut bucket = (index >> HALF_MAGNITUDE) as i64 - 1;
        let mut sub_bucket = (index & (HALF - 1)) + HALF;
        if bucket < 0 {
            sub_bucket -= HALF;
            bucket = 0;
        }
        sub_bucket << bucket
    }
}

/// Samples counted in the layout of an HDR histogram, without its per-sample
/// bookkeeping.
///
/// Recording is a bucket computation and one increment: no range check
/// beyond clamping, no minimum, maximum or total to maintain. Those are
/// derived when the counts become a [`Histogram`]
/// ([`to_histogram`](Self::to_histogram)), which records each counter's
/// lowest value as many times as it counted. Every value a counter covers is
/// equivalent to that one in the histogram's own terms, so the histogram is
/// the one recording each sample would have built: the same counts,
/// percentiles, mean, minimum and maximum (tested against `hdrhistogram`).
/// On no-op tasks the two `saturating_record` calls per task this replaces
/// were about a sixth of a worker's time.
#[derive(Clone)]
pub(crate) struct Samples {
    counts: Box<[u64]>,
}

impl Samples {
    pub(crate) fn new() -> Self {
        Samples {
            counts: vec![0; layout::LEN].into_boxed_slice(),
        }
    }

    /// Counts `value` nanoseconds: 0 as 1, and past the last counter as one
    /// hour, as `saturating_record` does.
    #[inline]
    pub(crate) fn record(&mut self, value: u64) {
        let value = if value > layout::LAST {
            MAX_TRACKABLE_NS
        } else {
            value.max(1)
        };
        self.counts[layout::index_for(value)] += 1;
    }

    /// Samples counted.
    #[cfg(all(test, not(feature = "loom")))]
    pub(crate) fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &Samples) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// The HDR histogram of these samples.
    pub(crate) fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                h.record_n(layout::value_for(i), n)
                    .expect("a counter's value lies in the histogram's range");
            }
        }
        h
    }
}

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

impl StoreReport {
    /// One line for a terminal: what the run found in the database. For
    /// example `48 already done in taskq.db (thumbnail/v1 records); 48 records
    /// of simulated there do not count for thumbnail/v1`.
    pub fn summary(&self) -> String {
        let file = std::path::Path::new(&self.path)
            .file_name()
            .map_or_else(|| self.path.clone(), |f| f.to_string_lossy().into_owned());
        let mut s = format!(
            "{done} already done in {file} ({processor} records)",
            processor = self.processor,
            done = self.lookup_hits
        );
        if self.replayed > 0 {
            s.push_str(&format!(
                "; {} records an earlier run could not commit were committed first",
                self.replayed
            ));
        }
        if !self.other_processors.is_empty() {
            let others: Vec<String> = self
                .other_processors
                .iter()
                .map(|o| {
                    let name = if o.processor.is_empty() {
                        "an unknown processor (written before processors were recorded)"
                    } else {
                        &o.processor
                    };
                    format!("{} records of {name}", o.succeeded)
                })
                .collect();
            s.push_str(&format!(
                "; {} there do not count for {}",
                others.join(", "),
                self.processor
            ));
        }
        s
    }
}

/// A processor's account of its own work: items produced, bytes moved, and
/// time per stage of its pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ProcessorReport {
    /// The processor (`thumbnail`).
    pub name: String,
    /// Items produced (for `thumbnail`: variants written).
    pub items: u64,
    /// Items per second of the run's `elapsed_s`.
    pub items_per_s: f64,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Bytes written to storage.
    pub bytes_written: u64,
    /// Time per stage, in pipeline order.
    pub stages: Vec<StageReport>,
}

impl ProcessorReport {
    /// Sets `items_per_s` from the run's elapsed time.
    pub fn finish(&mut self, elapsed_s: f64) {
        self.items_per_s = if elapsed_s > 0.0 {
            self.items as f64 / elapsed_s
        } else {
            0.0
        };
    }

    /// One or two lines for a terminal.
    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut s = format!(
            "{name}: {items} written, {rate:.1}/s; read {read:.2} MiB, wrote {written:.2} MiB",
            name = self.name,
            items = self.items,
            rate = self.items_per_s,
            read = mib(self.bytes_read),
            written = mib(self.bytes_written),
        );
        if !self.stages.is_empty() {
            s.push_str(
                "
stage ms total/mean/max:",
            );
            for st in &self.stages {
                s.push_str(&format!(
                    " {} {:.1}/{:.3}/{:.3}",
                    st.name, st.total_ms, st.mean_ms, st.max_ms
                ));
            }
        }
        s
    }
}

/// Time spent in one stage of a processor's pipeline, over all attempts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct StageReport {
    /// The stage (`read`, `decode`, `resize`, `encode`, `write`).
    pub name: String,
    /// Times the stage ran.
    pub count: u64,
    /// Total time, milliseconds (summed over workers, so it can exceed the
    /// elapsed time).
    pub total_ms: f64,
    /// Mean time per run of the stage, milliseconds.
    pub mean_ms: f64,
    /// Longest single run, milliseconds.
    pub max_ms: f64,
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

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = format!(
            "{status:?}: {succ} succeeded, {dup} duplicates, {dl} dead-lettered, {failed} failed \
             of {adm} admitted ({rej} rejected, {inv} invalid) in {el:.3}s\n\
             throughput {tp:.0} tasks/s; latency ms p50 {p50:.3} p95 {p95:.3} p99 {p99:.3} max {max:.3}\n\
             queue depth max {dmax}/{cap}, mean {dmean:.1}; retries {retried}",
            status = self.status,
            succ = c.succeeded,
            dup = c.duplicates,
            dl = c.dead_lettered,
            failed = c.failed,
            adm = c.admitted,
            rej = c.rejected,
            inv = c.invalid,
            el = self.elapsed_s,
            tp = self.throughput_per_s,
            p50 = self.latency_ms.p50,
            p95 = self.latency_ms.p95,
            p99 = self.latency_ms.p99,
            max = self.latency_ms.max,
            dmax = self.queue_depth.max,
            cap = self.queue_depth.capacity,
            dmean = self.queue_depth.mean,
            retried = c.retried,
        );
        if let Some(store) = &self.store {
            s.push('\n');
            s.push_str(&store.summary());
        }
        if let Some(p) = &self.processor {
            s.push('\n');
            s.push_str(&p.summary());
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(
                "\n{} error(s): see stderr and the report",
                self.errors.len()
            ));
        }
        s
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn samples_use_the_histograms_layout() {
        let h = new_histogram();
        assert_eq!(layout::LEN, h.distinct_values());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values: Vec<u64> = vec![1, 2, 3, MAX_TRACKABLE_NS - 1, MAX_TRACKABLE_NS];
        for shift in 0..42 {
            let p = 1u64 << shift;
            values.extend([p - 1, p, p + 1, 3 * p / 2]);
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Log-uniform over 1 ns ..= one hour.
            values.push((x >> (x % 64)).clamp(1, MAX_TRACKABLE_NS));
        }
        values.extend([layout::LAST - 1, layout::LAST]);
        assert_eq!(layout::index_for(layout::LAST), layout::LEN - 1);
        const { assert!(layout::LAST >= MAX_TRACKABLE_NS) };
        for &v in values.iter().filter(|&&v| (1..=layout::LAST).contains(&v)) {
            let i = layout::index_for(v);
            assert!(i < layout::LEN, "{v}");
            assert_eq!(layout::value_for(i), h.lowest_equivalent(v), "{v}");
        }
    }

    #[test]
    fn samples_build_the_histogram_recording_each_value_would() {
        let mut samples = Samples::new();
        let mut direct = new_histogram();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut values: Vec<u64> = vec![0, 1, 2, 1023, 1024, 2047, 2048, 2049, 999_999];
        values.extend([MAX_TRACKABLE_NS, MAX_TRACKABLE_NS + 1, u64::MAX]);
        values.extend([layout::LAST - 1, layout::LAST, layout::LAST + 1]);
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for &v in &values {
            samples.record(v);
            // What `Recorder` did before `Samples`.
            direct.saturating_record(v.max(1));
        }
        let built = samples.to_histogram();
        assert_eq!(samples.len(), values.len() as u64);
        assert_eq!(built.len(), direct.len());
        assert_eq!(built.min(), direct.min());
        assert_eq!(built.min_nz(), direct.min_nz());
        assert_eq!(built.max(), direct.max());
        assert_eq!(built.mean(), direct.mean());
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                built.value_at_quantile(q),
                direct.value_at_quantile(q),
                "q {q}"
            );
        }
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(recorded(&built), recorded(&direct));
        assert_eq!(
            Percentiles::from_histogram(&built),
            Percentiles::from_histogram(&direct)
        );
    }

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
