//! The hot cache of idempotency keys and the claim protocol over it.
//!
//! # Claim protocol
//!
//! 1. A worker claims a task's key with one atomic step on the key's map entry
//!    (DashMap's entry API: the shard stays locked from lookup to insert, never
//!    "check, then insert"):
//!    - vacant: the entry becomes `InFlight`; the claim is **new** (go to 2);
//!    - `InFlight`: **duplicate** (another worker is processing it);
//!    - `Done`: **duplicate**, with the recorded output.
//!
//!    A done entry with other parameters (image key, size) under the same key is
//!    a **conflict**: the key was reused for different work. An in-flight entry
//!    with other parameters is **contended**: the claim is tried again shortly,
//!    once that task has ended one way or the other.
//! 2. A new claim may still be a key recorded earlier (before a restart, or
//!    evicted from the cache). The worker asks the Bloom filter, and on "maybe"
//!    the store. If it was recorded, the worker removes its `InFlight` entry and
//!    completes the task as a duplicate. Otherwise it processes the task.
//! 3. On success the entry becomes `Done` and the record goes to the writer. On
//!    failure the entry is removed (the key may be tried again).
//! 4. After the writer commits a batch it appends the batch's keys to its
//!    eviction queue. Only the writer evicts, and only keys from that queue,
//!    oldest first, each after adding it to the Bloom filter: an entry never
//!    leaves the cache before its record is committed, and a key that left can
//!    always be found through the filter and the store.
//!
//! The cache holds at most `cache_capacity` entries plus the ones in flight or
//! waiting for a commit (both bounded by the engine's capacity and the
//! writer's queue).
//!
//! # Model checking
//!
//! `loom_tests/claim.rs` checks steps 1 to 4 under loom (one winner per key,
//! losers told in flight / done / contended / conflict, no key released before
//! its record is committed): its workers run the engine's claim step
//! ([`ClaimTable::claim_with_history`], with the real Bloom filter and an
//! in-memory store), and hand their records through the real
//! [`Handoff`](super::handoff::Handoff) to the engine's writer loop
//! (`writer::run`). Under the `loom` feature (only) a `ClaimTable` can carry a
//! deliberate `sync::fault::Fault` (check-then-insert claim, release on
//! finish), and the writer one (evict before commit), that the models must
//! reject.

use std::hash::{BuildHasher, Hash, Hasher};

use compact_str::CompactString;

use super::bloom::Bloom;
use super::store::Recorded;
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::map::{Action, Map};
use crate::task::Task;

/// What the cache knows about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// A worker is processing it.
    InFlight {
        /// Hash of the claiming task's image key and size.
        fingerprint: u64,
    },
    /// It succeeded (its record may not be committed yet).
    Done {
        /// Hash of the task's image key and size.
        fingerprint: u64,
        /// The recorded output.
        output: Option<CompactString>,
    },
}

/// Outcome of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the key now: process the task.
    New,
    /// Another worker is processing this key.
    InFlight,
    /// The key already succeeded; its recorded output.
    Done(Option<CompactString>),
    /// The key is done, or recorded, for a task with other parameters.
    Conflict,
    /// The key is in flight for a task with other parameters: whether this one
    /// conflicts depends on how that one ends. Claim again shortly.
    Contended,
}

/// The hot cache.
pub struct ClaimTable {
    map: Map<KeyState>,
    hasher: ahash::RandomState,
    /// A deliberate bug for the loom models ([`fault::with_fault`]); the field
    /// does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
}

impl Default for ClaimTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaimTable {
    /// An empty table.
    pub fn new() -> Self {
        ClaimTable {
            map: Map::new(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            #[cfg(feature = "loom")]
            fault: fault::injected()
                .filter(|f| matches!(f, Fault::CheckThenInsert | Fault::EarlyRelease)),
        }
    }

    /// A hash of what the key stands for (image key and size), to tell a
    /// reused key from a duplicate.
    pub fn fingerprint(&self, image_key: &str, size: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        image_key.hash(&mut h);
        size.hash(&mut h);
        h.finish()
    }

    /// The fingerprint of a task.
    pub fn task_fingerprint(&self, task: &Task) -> u64 {
        let mut size = CompactString::default();
        use std::fmt::Write;
        let _ = write!(size, "{}", task.size);
        self.fingerprint(&task.image_key, &size)
    }

    /// Step 1: claims `key` for a task with `fingerprint`.
    pub fn claim(&self, key: &str, fingerprint: u64) -> Claim {
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::CheckThenInsert) {
            // Loom only, `Fault::CheckThenInsert`: "is it vacant?" and the insert
            // are two steps under two locks, so two claimants can both win.
            if self.map.update(key, |slot| (slot.is_none(), Action::Keep)) {
                self.map.update(key, |_| {
                    ((), Action::Insert(KeyState::InFlight { fingerprint }))
                });
                return Claim::New;
            }
        }
        self.map.update(key, |slot| match slot {
            None => (
                Claim::New,
                Action::Insert(KeyState::InFlight { fingerprint }),
            ),
            Some(KeyState::InFlight { fingerprint: f }) if *f == fingerprint => {
                (Claim::InFlight, Action::Keep)
            }
            Some(KeyState::Done {
                fingerprint: f,
                output,
                ..
            }) if *f == fingerprint => (Claim::Done(output.clone()), Action::Keep),
            Some(KeyState::InFlight { .. }) => (Claim::Contended, Action::Keep),
            Some(KeyState::Done { .. }) => (Claim::Conflict, Action::Keep),
        })
    }

    /// Step 3, success: the key is done, its record not yet committed.
    pub fn finish(&self, key: &str, output: Option<CompactString>) {
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::EarlyRelease) {
            // Loom only, `Fault::EarlyRelease`: the entry goes at once, before
            // the writer has committed the record.
            let _ = output;
            self.abandon(key);
            return;
        }
        self.map.update(key, |slot| match slot {
            Some(KeyState::InFlight { fingerprint }) => {
                let fingerprint = *fingerprint;
                (
                    (),
                    Action::Set(KeyState::Done {
                        fingerprint,
                        output,
                    }),
                )
            }
            _ => {
                debug_assert!(false, "finish without a claim");
                ((), Action::Keep)
            }
        });
    }

    /// Steps 1 and 2: claims `key` for a task with `fingerprint`, and when the
    /// cache had no entry for it, asks `bloom` and, on "maybe", `lookup` (the
    /// store) whether the key was recorded before. A recorded key gives the
    /// claim up again: it is `Done` with the recorded output, or a `Conflict`
    /// when recorded with other parameters. `lookup` runs only for a key the
    /// filter may hold.
    ///
    /// This is the engine's claim step (`engine::execute` calls it for every
    /// first attempt with its reader as `lookup`); the loom models call it with
    /// an in-memory store.
    ///
    /// # Errors
    ///
    /// The error of `lookup`; the claim is given up first.
    #[inline]
    pub fn claim_with_history<E>(
        &self,
        bloom: &Bloom,
        key: &str,
        fingerprint: u64,
        lookup: impl FnOnce() -> Result<Option<Recorded>, E>,
    ) -> Result<Claim, E> {
        match self.claim(key, fingerprint) {
            Claim::New => {}
            other => return Ok(other),
        }
        if !bloom.may_contain(key) {
            return Ok(Claim::New);
        }
        match lookup() {
            Err(e) => {
                self.abandon(key);
                Err(e)
            }
            Ok(None) => Ok(Claim::New),
            Ok(Some(recorded)) => {
                // Found: this run does not own the key after all. The cache
                // entry goes (history hits are not cached, so the cache stays
                // bounded).
                self.abandon(key);
                if self.fingerprint(&recorded.image_key, &recorded.size) == fingerprint {
                    Ok(Claim::Done(recorded.output_key))
                } else {
                    Ok(Claim::Conflict)
                }
            }
        }
    }

    /// Steps 2 and 3, failure or found in history: gives the claim up.
    pub fn abandon(&self, key: &str) {
        self.map.update(key, |slot| match slot {
            Some(KeyState::InFlight { .. }) => ((), Action::Remove),
            _ => ((), Action::Keep),
        });
    }

    /// Step 4: removes the done entry of `key`, whose record the caller (the
    /// writer) has committed. Returns whether it did (an entry in flight is
    /// never touched).
    pub fn evict_committed(&self, key: &str) -> bool {
        self.map.update(key, |slot| match slot {
            Some(KeyState::Done { .. }) => (true, Action::Remove),
            _ => (false, Action::Keep),
        })
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of `key`, for tests and models.
    #[doc(hidden)]
    pub fn state(&self, key: &str) -> Option<KeyState> {
        self.map
            .update(key, |slot| (slot.map(|s| s.clone()), Action::Keep))
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn claim_life_cycle() {
        let t = ClaimTable::new();
        let fp = t.fingerprint("img/a.jpg", "200x200");
        assert_eq!(t.claim("k", fp), Claim::New);
        assert_eq!(t.claim("k", fp), Claim::InFlight);
        assert_eq!(t.claim("k", fp ^ 1), Claim::Contended);
        assert!(!t.evict_committed("k"), "in flight is never evicted");
        t.finish("k", Some("out".into()));
        assert_eq!(t.claim("k", fp), Claim::Done(Some("out".into())));
        assert_eq!(t.claim("k", fp ^ 1), Claim::Conflict);
        assert!(t.evict_committed("k"));
        assert!(t.is_empty());
        assert_eq!(t.claim("k", fp), Claim::New);
        t.abandon("k");
        assert_eq!(t.claim("k", fp), Claim::New);
    }

    #[test]
    fn concurrent_claims_have_one_winner() {
        let t = std::sync::Arc::new(ClaimTable::new());
        for round in 0..200 {
            let key = format!("key-{round}");
            let wins: usize = (0..4)
                .map(|_| {
                    let (t, key) = (t.clone(), key.clone());
                    std::thread::spawn(move || usize::from(t.claim(&key, 7) == Claim::New))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(wins, 1);
        }
    }
}
