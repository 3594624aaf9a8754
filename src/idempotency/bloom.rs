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

/// Bits set per key, all within one 512-bit block (one cache line).
const PROBES: u32 = 8;

/// 64-bit words per block: 8 words = 512 bits = one cache line.
const BLOCK_WORDS: usize = 8;

/// A fixed-size concurrent Bloom filter, blocked: a key's bits all live in one
/// cache line, so a lookup costs one cache miss instead of one per probe (the
/// filter is megabytes, far larger than L2). The false-positive rate is a
/// little higher than an unblocked filter of the same size (~1% at 10 bits per
/// key becomes ~1.5%), which costs an occasional store lookup, never a wrong
/// answer.
///
/// Public (through `taskq::internals`) for the criterion benches only.
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return; }
/// use taskq::internals::Bloom;
/// let bloom = Bloom::with_capacity(1_000);
/// bloom.insert("img/000001.jpg:200x200");
/// assert!(bloom.may_contain("img/000001.jpg:200x200"));
/// ```
pub struct Bloom {
    words: Box<[AtomicU64]>,
    /// Blocks − 1 (a power of two minus one).
    block_mask: u64,
    hasher: ahash::RandomState,
}

impl Bloom {
    /// A filter sized for `expected` keys at 10 bits per key, rounded up to a
    /// power of two; at least 2^16 bits (one 512-bit block under loom, so a
    /// model does not build thousands of loom atomics), at most 2^31.
    pub fn with_capacity(expected: u64) -> Self {
        const MIN_BITS: u64 = if cfg!(feature = "loom") {
            1 << 9
        } else {
            1 << 16
        };
        let bits = (expected.saturating_mul(10))
            .clamp(MIN_BITS, 1 << 31)
            .next_power_of_two();
        let blocks = bits / (64 * BLOCK_WORDS as u64);
        Bloom {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            block_mask: blocks - 1,
            // Fixed seeds under loom: a model must touch the same words in
            // every execution it replays.
            #[cfg(feature = "loom")]
            hasher: ahash::RandomState::with_seeds(5, 6, 7, 8),
            #[cfg(not(feature = "loom"))]
            hasher: ahash::RandomState::new(),
        }
    }

    /// Bytes of memory the bits take.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The block's first word and the key's bit positions in it (0..512): the
    /// low bits of the hash pick the block, 9-bit slices of the rest the bits.
    #[inline]
    fn probes(&self, key: &str) -> (usize, impl Iterator<Item = usize>) {
        let h = self.hasher.hash_one(key);
        let block = (h & self.block_mask) as usize * BLOCK_WORDS;
        let mut rest = h.rotate_left(32) ^ (h >> 17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bits = (0..PROBES).map(move |_| {
            let bit = (rest & 511) as usize;
            rest = rest.rotate_right(9);
            bit
        });
        (block, bits)
    }

    /// Adds `key` (from any thread).
    pub fn insert(&self, key: &str) {
        let (block, bits) = self.probes(key);
        for bit in bits {
            self.words[block + bit / 64].fetch_or(1 << (bit % 64), Relaxed);
        }
    }

    /// False if `key` was certainly never added; true if it was, or (rarely)
    /// if another key set the same bits.
    #[inline]
    pub fn may_contain(&self, key: &str) -> bool {
        let (block, mut bits) = self.probes(key);
        bits.all(|bit| self.words[block + bit / 64].load(Relaxed) & (1 << (bit % 64)) != 0)
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
        assert!(fp < 3_000, "false positive rate {}%", fp as f64 / 1000.0);
        assert!(b.bytes() <= 256 * 1024);
    }
}
