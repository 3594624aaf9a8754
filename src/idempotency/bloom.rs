//! A Bloom filter over recorded keys, shared by workers and the writer.
//!
//! It makes the hot-cache miss path cheap for keys that are truly new: a key the
//! filter has never seen was never recorded, so no SQLite lookup is needed. It
//! is seeded with every succeeded key of the history at start and the writer
//! adds each key it commits. False positives cost a lookup; there are no false
//! negatives.
//!
//! # Memory ordering
//!
//! Bits are set with `fetch_or(Relaxed)` and read with `load(Relaxed)`. A reader
//! that must see a key's bits is ordered after the insertion by a lock: the
//! writer inserts a key before it marks the key's hot-cache entry committed (and
//! long before it can evict it), and a worker reads the filter only after its own
//! claim took that entry's shard lock and found it vacant.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Hash probes per key (optimal for ~10 bits per key).
const PROBES: u64 = 7;

/// A fixed-size concurrent Bloom filter.
pub(crate) struct Bloom {
    words: Box<[AtomicU64]>,
    mask: u64,
    hasher: ahash::RandomState,
}

impl Bloom {
    /// A filter sized for `expected` keys at about 1% false positives (10 bits
    /// per key, rounded up to a power of two; at least 2^16 bits, at most 2^31).
    pub(crate) fn with_capacity(expected: u64) -> Self {
        let bits = (expected.saturating_mul(10))
            .clamp(1 << 16, 1 << 31)
            .next_power_of_two();
        Bloom {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits - 1,
            hasher: ahash::RandomState::new(),
        }
    }

    /// Bytes of memory the bits take.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    #[inline]
    fn probes(&self, key: &str) -> impl Iterator<Item = u64> + '_ {
        let h = self.hasher.hash_one(key);
        let (h1, h2) = (h, h.rotate_left(32) | 1);
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & self.mask)
    }

    /// Adds `key`.
    pub(crate) fn insert(&self, key: &str) {
        for bit in self.probes(key) {
            self.words[(bit / 64) as usize].fetch_or(1 << (bit % 64), Relaxed);
        }
    }

    /// False if `key` was certainly never added.
    #[inline]
    pub(crate) fn may_contain(&self, key: &str) -> bool {
        self.probes(key)
            .all(|bit| self.words[(bit / 64) as usize].load(Relaxed) & (1 << (bit % 64)) != 0)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_few_false_positives() {
        let b = Bloom::with_capacity(100_000);
        for i in 0..100_000 {
            b.insert(&format!("img/{i:06}.jpg:200x200"));
        }
        for i in 0..100_000 {
            assert!(b.may_contain(&format!("img/{i:06}.jpg:200x200")));
        }
        let fp = (100_000..200_000)
            .filter(|i| b.may_contain(&format!("img/{i:06}.jpg:200x200")))
            .count();
        assert!(fp < 2_000, "false positive rate {}%", fp as f64 / 1000.0);
        assert!(b.bytes() <= 256 * 1024);
    }
}
