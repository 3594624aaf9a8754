//! Admission: the queue-depth counter that bounds what the engine holds.
//!
//! One atomic word holds the depth (tasks admitted and not yet released: queued,
//! running, or waiting for a retry) in its low bits and a `CLOSED` flag in its top
//! bit. Keeping both in one word makes "closed" and "drained" exact: an admission
//! either lands before `close` (and is counted in the depth `close` sees) or fails
//! with [`AdmitError::Closed`]; there is no window in which a task slips in after
//! the engine decided it was drained.
//!
//! # Protocol
//!
//! 1. A producer reserves a slot with one compare-and-swap: refused if closed or if
//!    `depth == capacity`.
//! 2. In block mode a refused producer parks: it takes the lock, registers in
//!    `waiters`, re-checks, and waits on `room`.
//! 3. Workers release slots in batches (one `fetch_sub` per batch, not per task).
//!    A release that leaves the depth at or below the low-water mark
//!    (`capacity / 2`) and sees `waiters > 0` takes the lock and notifies, so a
//!    producer that registered before the release is woken, and one that
//!    registers after it sees the freed room in its re-check. Waking at the
//!    low-water mark rather than at every free slot lets a parked producer
//!    refill half the capacity per wake-up. A producer that hands back slots it
//!    reserved and did not use (`unreserve`) notifies whatever the depth: the
//!    parked producer may have been refused for exactly those slots.
//! 4. `close` sets `CLOSED`. The release (or the `close`) that leaves the word at
//!    exactly `CLOSED` (depth 0) is told [`Drained`] and wakes whoever waits for it.
//!
//! # Memory ordering
//!
//! Steps 2 and 3 form a store-load pair on two locations (`state`, `waiters`):
//! the producer writes `waiters` then reads `state`; the releaser writes `state`
//! then reads `waiters`. Both sides use `SeqCst`, so at least one of them sees the
//! other's write, and the lock makes "saw it" and "is waiting" the same thing.
//!
//! # Model checking
//!
//! `loom_tests/admission.rs` checks the bound, the accounting, the wake-ups and
//! the single `Drained` under loom. Under the `loom` feature (only) an
//! `Admission` can carry a deliberate `sync::fault::Fault`
//! (check-then-act reservation, skipped notify, weak ordering, split close) that
//! the models must reject.

use crate::sync::atomic::{AtomicUsize, Ordering, Ordering::*};
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, CachePadded, Condvar, Mutex};

const CLOSED: usize = 1 << (usize::BITS - 1);
const DEPTH: usize = !CLOSED;

/// What a producer does when the engine is at capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionMode {
    /// Park the producer until there is room (no spinning while it waits).
    #[default]
    Block,
    /// Refuse at once (the task is handed back as `SubmitError::Full`) and
    /// count a rejection.
    Reject,
}

impl crate::setting::Choice for AdmissionMode {
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            AdmissionMode::Block,
            "block",
            "Park the producer until there is room",
        ),
        (
            AdmissionMode::Reject,
            "reject",
            "Refuse at once and count a rejection",
        ),
    ];
}

/// Why a slot was not reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmitError {
    /// Depth is at capacity.
    Full,
    /// The engine stopped admitting.
    Closed,
}

/// Returned by a release or a close that brought a closed engine to depth 0.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Drained;

/// The depth counter and the producers' parking lot.
pub struct Admission {
    /// Depth in the low bits, `CLOSED` in the top bit. Written by producers
    /// (CAS, +1), workers and the retry queue (`fetch_sub`, release batches) and
    /// `close` (`fetch_or`); read by all of them and by observers of the depth.
    state: CachePadded<AtomicUsize>,
    /// Producers parked in [`Admission::acquire`]. Written under `lock` by the
    /// producer (+1 before its re-check, -1 after), read by releasers.
    waiters: CachePadded<AtomicUsize>,
    /// Highest depth any admission produced. Written (rarely: only on a new high)
    /// by producers, read by reports.
    max_depth: AtomicUsize,
    capacity: usize,
    /// Depth at or below which parked producers are woken: `capacity / 2`.
    low_water: usize,
    lock: Mutex<()>,
    room: Condvar,
    /// A deliberate bug for the loom models ([`fault::with_fault`]); the field
    /// does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
}

impl Admission {
    /// A counter bounding depth at `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        assert!((1..CLOSED).contains(&capacity), "capacity out of range");
        Admission {
            state: CachePadded::new(AtomicUsize::new(0)),
            waiters: CachePadded::new(AtomicUsize::new(0)),
            max_depth: AtomicUsize::new(0),
            capacity,
            low_water: capacity / 2,
            lock: Mutex::new(()),
            room: Condvar::new(),
            #[cfg(feature = "loom")]
            fault: fault::injected().filter(|f| {
                matches!(
                    f,
                    Fault::CheckThenAct
                        | Fault::SkipNotify
                        | Fault::WeakOrdering
                        | Fault::SplitClose
                )
            }),
        }
    }

    /// The ordering of one side of the store-load pair (module docs): `SeqCst`.
    /// Only under loom, with [`Fault::WeakOrdering`] injected, the weaker `weak`.
    #[inline(always)]
    fn pair(&self, weak: Ordering) -> Ordering {
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::WeakOrdering) {
            return weak;
        }
        let _ = weak;
        SeqCst
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tasks held right now (a snapshot).
    pub fn depth(&self) -> usize {
        self.state.load(Acquire) & DEPTH
    }

    /// Highest depth reached so far.
    pub fn max_depth(&self) -> usize {
        self.max_depth.load(Relaxed)
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    /// True once closed with nothing held.
    pub fn is_drained(&self) -> bool {
        // SeqCst: read inside a worker's sleep re-check, which must be ordered after
        // its announcement of sleep (see `scheduler::sleep`).
        self.state.load(SeqCst) == CLOSED
    }

    /// Reserves a slot without blocking.
    #[inline]
    pub fn try_acquire(&self) -> Result<(), AdmitError> {
        self.try_acquire_many(1).map(|_| ())
    }

    /// Reserves between 1 and `max` slots (as many as there is room for) without
    /// blocking; returns how many.
    #[inline]
    pub fn try_acquire_many(&self, max: usize) -> Result<usize, AdmitError> {
        debug_assert!(max >= 1);
        // SeqCst (`pair`): the load and the CAS pair with a releaser's `fetch_sub`
        // and its read of `waiters` (store-load pair, see the module docs).
        let mut cur = self.state.load(self.pair(Acquire));
        loop {
            if cur & CLOSED != 0 {
                return Err(AdmitError::Closed);
            }
            if cur >= self.capacity {
                return Err(AdmitError::Full);
            }
            let k = max.min(self.capacity - cur);
            #[cfg(feature = "loom")]
            if self.fault == Some(Fault::CheckThenAct) {
                // Loom only, `Fault::CheckThenAct`: the check above and this
                // store are two steps, so two producers can take one slot.
                self.state.store(cur + k, SeqCst);
                return Ok(k);
            }
            match self.state.compare_exchange_weak(
                cur,
                cur + k,
                self.pair(AcqRel),
                self.pair(Acquire),
            ) {
                Ok(_) => {
                    let depth = cur + k;
                    if depth > self.max_depth.load(Relaxed) {
                        self.max_depth.fetch_max(depth, Relaxed);
                    }
                    return Ok(k);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reserves a slot, parking the caller while the engine is full.
    ///
    /// Tries once without waiting; when full, sleeps on a condition variable
    /// until a release reaches the low-water mark (see
    /// [`acquire_many`](Self::acquire_many)), slots are handed back, or the
    /// engine closes. It does not spin.
    pub fn acquire(&self) -> Result<(), AdmitError> {
        self.acquire_many(1).map(|_| ())
    }

    /// Reserves between 1 and `max` slots, parking while the engine is full.
    ///
    /// A parked producer is woken once the depth has fallen to the low-water
    /// mark (half the capacity), not at every freed slot: it then refills half
    /// the capacity in one go, so a producer faster than the workers costs one
    /// park/wake cycle per `capacity / 2` tasks instead of one per task, and
    /// burns no CPU the workers need while it waits.
    pub fn acquire_many(&self, max: usize) -> Result<usize, AdmitError> {
        match self.try_acquire_many(max) {
            Err(AdmitError::Full) => {}
            done => return done,
        }
        let mut guard = lock(&self.lock);
        // SeqCst (`pair`): pairs with the releaser's load of `waiters` (module docs).
        self.waiters.fetch_add(1, self.pair(AcqRel));
        let result = loop {
            match self.try_acquire_many(max) {
                Err(AdmitError::Full) => guard = wait(&self.room, guard),
                done => break done,
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        drop(guard);
        result
    }

    /// Frees `n` slots of finished tasks. Returns [`Drained`] when this
    /// release emptied a closed engine (exactly one release or close sees
    /// that).
    ///
    /// Parked producers are woken when the depth reaches the low-water mark
    /// (see [`acquire_many`](Self::acquire_many)). Every admitted task is
    /// eventually released, so the depth always gets there: no producer waits
    /// forever while there is room.
    pub fn release(&self, n: usize) -> Option<Drained> {
        self.free(n, self.low_water)
    }

    /// Hands back `n` slots that were reserved and never used (a chunk larger
    /// than what was left to submit). Returns [`Drained`] like
    /// [`release`](Self::release).
    ///
    /// Unlike a release, this wakes parked producers whatever the depth: they
    /// may have been refused only because of this reservation, and no task is
    /// bound to finish to wake them otherwise (a processor may itself wait for
    /// every producer to finish).
    pub fn unreserve(&self, n: usize) -> Option<Drained> {
        self.free(n, usize::MAX)
    }

    /// Frees `n` slots; wakes parked producers if the depth is then at most
    /// `wake_at`.
    fn free(&self, n: usize, wake_at: usize) -> Option<Drained> {
        if n == 0 {
            return None;
        }
        // SeqCst (`pair`): pairs with a parking producer's `waiters` increment and
        // re-check.
        let prev = self.state.fetch_sub(n, self.pair(AcqRel));
        debug_assert!(prev & DEPTH >= n, "released more slots than were held");
        let depth = (prev & DEPTH) - n;
        let wake = depth <= wake_at && self.waiters.load(self.pair(Acquire)) > 0;
        #[cfg(feature = "loom")]
        let wake = wake && self.fault != Some(Fault::SkipNotify);
        if wake {
            let _guard = lock(&self.lock);
            self.room.notify_all();
        }
        (prev - n == CLOSED).then_some(Drained)
    }

    /// Stops admission. Blocked producers wake and get [`AdmitError::Closed`].
    /// Returns [`Drained`] if nothing was held at that moment.
    pub fn close(&self) -> Option<Drained> {
        // Loom only, `Fault::SplitClose`: whether the engine was empty is read
        // before, not by, the `fetch_or` that closes it.
        #[cfg(feature = "loom")]
        let split = (self.fault == Some(Fault::SplitClose)).then(|| self.depth() == 0);
        let prev = self.state.fetch_or(CLOSED, SeqCst);
        {
            let _guard = lock(&self.lock);
            self.room.notify_all();
        }
        #[cfg(feature = "loom")]
        if let Some(empty) = split {
            return empty.then_some(Drained);
        }
        (prev == 0).then_some(Drained)
    }
}

/// A worker's pending releases: completions are counted locally and handed to
/// [`Admission::release`] in batches, so the shared word is touched once per
/// batch instead of once per task.
pub struct ReleaseBatch {
    pending: usize,
    threshold: usize,
}

impl ReleaseBatch {
    /// Batches of `threshold` (at least 1).
    pub fn new(threshold: usize) -> Self {
        ReleaseBatch {
            pending: 0,
            threshold: threshold.max(1),
        }
    }

    /// The batch size that keeps a bound of `capacity` responsive with `workers`
    /// workers: a worker never sits on more than a small share of the capacity.
    pub fn threshold_for(capacity: usize, workers: usize) -> usize {
        (capacity / (4 * workers.max(1))).clamp(1, 64)
    }

    /// Counts one completion; releases the batch when it is full.
    #[inline]
    pub fn add(&mut self, admission: &Admission) -> Option<Drained> {
        self.pending += 1;
        if self.pending >= self.threshold {
            self.flush(admission)
        } else {
            None
        }
    }

    /// Releases whatever is pending (before a worker idles or exits).
    pub fn flush(&mut self, admission: &Admission) -> Option<Drained> {
        let n = std::mem::take(&mut self.pending);
        admission.release(n)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn bound_and_reject() {
        let a = Admission::new(2);
        assert_eq!(a.try_acquire(), Ok(()));
        assert_eq!(a.try_acquire(), Ok(()));
        assert_eq!(a.try_acquire(), Err(AdmitError::Full));
        assert_eq!(a.depth(), 2);
        assert_eq!(a.release(1), None);
        assert_eq!(a.try_acquire(), Ok(()));
        assert_eq!(a.max_depth(), 2);
    }

    #[test]
    fn acquire_many_takes_what_fits() {
        let a = Admission::new(5);
        assert_eq!(a.try_acquire_many(3), Ok(3));
        assert_eq!(a.try_acquire_many(3), Ok(2));
        assert_eq!(a.try_acquire_many(3), Err(AdmitError::Full));
        assert_eq!(a.max_depth(), 5);
        assert_eq!(a.release(4), None);
        assert_eq!(a.acquire_many(10), Ok(4));
    }

    #[test]
    fn close_then_drain_reported_once() {
        let a = Admission::new(4);
        a.try_acquire().unwrap();
        a.try_acquire().unwrap();
        assert_eq!(a.close(), None);
        assert_eq!(a.try_acquire(), Err(AdmitError::Closed));
        assert_eq!(a.release(1), None);
        assert_eq!(a.release(1), Some(Drained));
        assert!(a.is_drained());
        let b = Admission::new(1);
        assert_eq!(b.close(), Some(Drained));
    }

    #[test]
    fn blocked_producer_wakes_on_release_and_on_close() {
        let a = Arc::new(Admission::new(1));
        a.try_acquire().unwrap();
        let a2 = a.clone();
        let t = thread::spawn(move || a2.acquire());
        thread::sleep(Duration::from_millis(20));
        assert_eq!(a.release(1), None);
        assert_eq!(t.join().unwrap(), Ok(()));

        let a2 = a.clone();
        let t = thread::spawn(move || a2.acquire());
        thread::sleep(Duration::from_millis(20));
        let _ = a.close();
        assert_eq!(t.join().unwrap(), Err(AdmitError::Closed));
    }

    #[test]
    fn release_batches() {
        let a = Admission::new(8);
        for _ in 0..8 {
            a.try_acquire().unwrap();
        }
        let mut batch = ReleaseBatch::new(3);
        assert_eq!(batch.add(&a), None);
        assert_eq!(batch.add(&a), None);
        assert_eq!(a.depth(), 8);
        assert_eq!(batch.add(&a), None);
        assert_eq!(a.depth(), 5);
        batch.add(&a);
        batch.flush(&a);
        assert_eq!(a.depth(), 4);
        assert_eq!(ReleaseBatch::threshold_for(1, 8), 1);
        assert_eq!(ReleaseBatch::threshold_for(1024, 2), 64);
        assert_eq!(ReleaseBatch::threshold_for(64, 2), 8);
    }
}
