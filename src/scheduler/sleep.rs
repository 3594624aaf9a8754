//! Parking idle workers without losing a wake-up.
//!
//! # Protocol
//!
//! A worker that found no work (after spinning) calls [`Sleep::sleep`]:
//!
//! 1. take the lock;
//! 2. announce itself: `sleepers += 1`;
//! 3. re-check for work (or for the end of the run) with the caller's predicate;
//!    if there is some, withdraw (`sleepers -= 1`) and return;
//! 4. wait on the condition variable (which releases the lock), then withdraw.
//!
//! Whoever makes work available (a producer, the retry queue, a worker that
//! stole a batch) first publishes it, then calls [`Sleep::notify_one`]: if
//! `sleepers > 0` it takes the lock and signals.
//!
//! Why no wake-up is lost: the notifier's publish-then-read of `sleepers` and the
//! worker's announce-then-re-check are a store-load pair on two locations; with
//! `SeqCst` on both sides at least one side sees the other. If the notifier sees
//! the announcement, it needs the lock, which the worker holds from step 1 until
//! it waits, so the signal arrives after the worker is waiting (or after it saw
//! the work and left). If the notifier does not see it, the worker's re-check sees
//! the work.
//!
//! # Memory ordering
//!
//! `sleepers` is written by workers under the lock and read by notifiers without
//! it; the read is `SeqCst` after a `SeqCst` fence that follows the publish.
//! Predicates passed to `sleep` must read the published state with `SeqCst` (the
//! crossbeam deques' `is_empty` does, and so does `Admission::is_drained`).
//!
//! # Model checking
//!
//! `loom_tests/parking.rs` runs this protocol against the real [`Scheduler`]
//! under loom. Under the `loom` feature (only) a `Sleep` can carry a deliberate
//! [`Fault`](crate::sync::fault::Fault) (no re-check, unlocked notify) that the
//! models must reject.

use super::Scheduler;
use crate::sync::atomic::{fence, AtomicUsize, Ordering::SeqCst};
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, CachePadded, Condvar, Mutex};

/// The parking lot of a pool's workers.
pub struct Sleep {
    /// Workers between step 2 and their withdrawal. Written by workers under
    /// `lock`; read by notifiers.
    sleepers: CachePadded<AtomicUsize>,
    lock: Mutex<()>,
    wake: Condvar,
    /// A deliberate bug for the loom models ([`fault::with_fault`]); the field
    /// does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Sleep {
    /// A parking lot with nobody in it.
    pub fn new() -> Self {
        Sleep {
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            #[cfg(feature = "loom")]
            fault: fault::injected()
                .filter(|f| matches!(f, Fault::NoRecheck | Fault::UnlockedNotify)),
        }
    }

    /// The parking lot of `scheduler` (for the loom models and benches, which
    /// drive a [`Scheduler`] from outside the crate).
    pub fn of<T>(scheduler: &Scheduler<T>) -> &Sleep {
        &scheduler.sleep
    }

    /// Parks the calling worker unless `ready()` (work available, or the run is
    /// over) holds once it has announced itself. May return spuriously: callers
    /// loop and look for work again.
    pub fn sleep(&self, ready: impl Fn() -> bool) {
        // Loom only: with `Fault::NoRecheck` the re-check in step 3 never sees
        // work, so the worker announces itself and waits without looking again.
        #[cfg(feature = "loom")]
        let ready = || self.fault != Some(Fault::NoRecheck) && ready();
        let guard = lock(&self.lock);
        self.sleepers.fetch_add(1, SeqCst);
        if ready() {
            self.sleepers.fetch_sub(1, SeqCst);
            return;
        }
        let guard = wait(&self.wake, guard);
        self.sleepers.fetch_sub(1, SeqCst);
        drop(guard);
    }

    /// Wakes one parked worker, if any. Call after publishing the work.
    #[inline]
    pub fn notify_one(&self) {
        // SeqCst fence: orders the caller's publish before the read of `sleepers`.
        fence(SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            #[cfg(feature = "loom")]
            if self.fault == Some(Fault::UnlockedNotify) {
                // Loom only, `Fault::UnlockedNotify`: without the lock the signal
                // can fall between a worker's re-check and its wait.
                self.wake.notify_one();
                return;
            }
            let _guard = lock(&self.lock);
            self.wake.notify_one();
        }
    }

    /// Wakes every parked worker (end of the run).
    pub fn notify_all(&self) {
        fence(SeqCst);
        let _guard = lock(&self.lock);
        self.wake.notify_all();
    }

    /// Workers parked (or about to park) right now.
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(SeqCst)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn parked_worker_is_woken_by_work() {
        let sleep = Arc::new(Sleep::new());
        let work = Arc::new(AtomicBool::new(false));
        let (s, w) = (sleep.clone(), work.clone());
        let t = std::thread::spawn(move || {
            while !w.load(SeqCst) {
                s.sleep(|| w.load(SeqCst));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        work.store(true, SeqCst);
        sleep.notify_one();
        t.join().unwrap();
        assert_eq!(sleep.sleepers(), 0);
    }
}
