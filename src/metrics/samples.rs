//! [`Samples`]: latency and service times counted in the bucket layout of
//! an HDR histogram, and that layout's math.
//!
//! Invariant: `Samples::to_histogram` builds exactly the histogram that
//! recording each sample with `saturating_record` would have built (same
//! counts, percentiles, mean, minimum and maximum); the tests below check
//! it against `hdrhistogram` itself.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;

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

/// The counter `value` nanoseconds go to: 0 as 1, and past the last counter
/// as one hour, as `saturating_record` does.
#[inline]
fn counter_for(value: u64) -> usize {
    let value = if value > layout::LAST {
        MAX_TRACKABLE_NS
    } else {
        value.max(1)
    };
    layout::index_for(value)
}

/// Samples counted in the layout of an HDR histogram, without its per-sample
/// bookkeeping.
///
/// Recording is a bucket computation and one increment: no range check
/// beyond clamping, no minimum, maximum or total to maintain. Those are
/// derived when the counts become a [`Histogram`]
/// (`to_histogram`), which records each counter's
/// lowest value as many times as it counted. Every value a counter covers is
/// equivalent to that one in the histogram's own terms, so the histogram is
/// the one recording each sample would have built: the same counts,
/// percentiles, mean, minimum and maximum (tested against `hdrhistogram`).
/// On no-op tasks the two `saturating_record` calls per task this replaces
/// were about a sixth of a worker's time.
///
/// Public so that a harness timing something other than the engine (the
/// benchmark's baseline ports) records latency exactly as the engine does.
///
/// The counters are atomics with one writer: `record` is a relaxed load and
/// store (the same instructions as a plain increment on x86-64 and AArch64,
/// no locked read-modify-write), so another thread can read a live copy
/// ([`snapshot`](Self::snapshot)) while the owner records. A live read is a
/// racy view: each counter is one the owner wrote, not all from one instant.
/// These atomics synchronise nothing, so they are `std`'s even under loom.
///
/// # Examples
///
/// ```
/// use taskq::metrics::Samples;
/// let mut s = Samples::new();
/// for ns in [1_000_000, 2_000_000, 3_000_000] {
///     s.record(ns);
/// }
/// let p = s.percentiles();
/// assert_eq!(p.count, 3);
/// assert!((p.p50 - 2.0).abs() < 0.01); // milliseconds
/// ```
pub struct Samples {
    counts: Box<[AtomicU64]>,
}

impl Clone for Samples {
    fn clone(&self) -> Self {
        self.snapshot()
    }
}

impl Default for Samples {
    fn default() -> Self {
        Samples::new()
    }
}

impl Samples {
    /// No samples.
    pub fn new() -> Self {
        Samples {
            counts: (0..layout::LEN).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts `value` nanoseconds: 0 as 1, and past the last counter as one
    /// hour, as `saturating_record` does.
    ///
    /// `&mut self`: one thread records into a `Samples`. Others may read it
    /// meanwhile through a shared reference ([`snapshot`](Self::snapshot)).
    #[inline]
    pub fn record(&mut self, value: u64) {
        *self.counts[counter_for(value)].get_mut() += 1;
    }

    /// Records `value` through a shared reference, for a recorder shared
    /// with its live readers. The caller must be the only thread that
    /// records into these samples (each counter has one writer); readers
    /// only read.
    #[inline]
    pub(crate) fn record_owned(&self, value: u64) {
        let c = &self.counts[counter_for(value)];
        // One writer: a load and a store, not a locked add.
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    /// Samples counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut s = taskq::metrics::Samples::new();
    /// s.record(5);
    /// s.record(7);
    /// assert_eq!(s.len(), 2);
    /// ```
    pub fn len(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// No samples counted.
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| c.load(Relaxed) == 0)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Samples) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a.get_mut() += b.load(Relaxed);
        }
    }

    /// A copy of the counts as they are now (callable while another thread
    /// records).
    pub fn snapshot(&self) -> Samples {
        Samples {
            counts: self
                .counts
                .iter()
                .map(|c| AtomicU64::new(c.load(Relaxed)))
                .collect(),
        }
    }

    /// How many samples are at most each of `bounds_ns` (ascending), as a
    /// Prometheus histogram's cumulative buckets count them. A sample is
    /// counted under a bound when the lowest value of its counter is at most
    /// the bound, so a count is exact to the histogram's precision (three
    /// significant figures: 0.1%).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut s = taskq::metrics::Samples::new();
    /// for ns in [500, 1_500, 1_500_000] {
    ///     s.record(ns);
    /// }
    /// assert_eq!(s.cumulative(&[1_000, 1_000_000, 10_000_000]), vec![1, 2, 3]);
    /// ```
    pub fn cumulative(&self, bounds_ns: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; bounds_ns.len()];
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            if n == 0 {
                continue;
            }
            let v = layout::value_for(i);
            // The first bound at or above this counter's value; every bound
            // after it counts the samples too (summed below).
            let first = bounds_ns.partition_point(|&b| b < v);
            if let Some(slot) = out.get_mut(first) {
                *slot += n;
            }
        }
        let mut running = 0;
        for slot in &mut out {
            running += *slot;
            *slot = running;
        }
        out
    }

    /// The percentiles of these samples, in milliseconds.
    pub fn percentiles(&self) -> super::Percentiles {
        super::Percentiles::from_histogram(&self.to_histogram())
    }

    /// The HDR histogram of these samples.
    pub(crate) fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                h.record_n(layout::value_for(i), n)
                    .expect("a counter's value lies in the histogram's range");
            }
        }
        h
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::metrics::Percentiles;

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
}
