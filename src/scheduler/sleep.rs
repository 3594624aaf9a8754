//! Parking idle workers without losing a wake-up, and without waking more of
//! them than the work needs.
//!
//! # Protocol
//!
//! A worker is *running* (it has a task), *searching* (it found no task and
//! looks again, spinning), or *parked*. `searching` counts the searchers,
//! `sleepers` the parked (or parking) workers.
//!
//! A worker that found nothing calls [`Sleep::try_start_search`] and, unless
//! half the pool already searches, looks again a few times. If it finds work
//! it calls [`Sleep::found_work`]; otherwise it calls [`Sleep::end_search`].
//! Then it parks with [`Sleep::sleep`]:
//!
//! 1. take the lock;
//! 2. announce itself: `sleepers += 1`;
//! 3. re-check for work (or for the end of the run) with the caller's predicate;
//!    if there is some, withdraw and return;
//! 4. wait on the condition variable (which releases the lock), then withdraw.
//!
//! It returns *searching*: a woken worker looks for the work it was woken for.
//!
//! Whoever makes work available (a producer, the retry queue, a worker that
//! stole a batch) first publishes it, then calls [`Sleep::notify_one`]: if a
//! worker is searching, nothing (the searcher will find the work, or see it in
//! its re-check before it parks); otherwise, if `sleepers > 0`, it takes the
//! lock, and if a worker is waiting, counts it as searching on its behalf and
//! signals. The last searcher to find work calls `notify_one` too, so that
//! while work keeps coming one more worker joins at a time.
//!
//! This keeps a publisher from paying a wake-up per publish when many workers
//! are parked (with 16 idle cores each 256-task chunk of a producer used to
//! wake a worker that found little and parked again), and keeps the lock
//! uncontended.
//!
//! Why no wake-up is lost: the publisher's publish-then-read (of `searching`,
//! then `sleepers`) and the worker's write-then-re-check (`searching −= 1`,
//! `sleepers += 1`, then the re-check) are store-load pairs, all `SeqCst`. If
//! the publisher sees a searcher, that searcher's decrement comes later in the
//! total order, and so does its re-check, which sees the work (or it found
//! work, and then it either leaves other searchers behind or wakes a sleeper
//! that searches). If it sees no searcher and a sleeper, it needs the lock,
//! which a parking worker holds from step 1 until it waits, so the signal
//! arrives after the worker is waiting (or after it saw the work and left). If
//! it sees neither, any worker that parks later announces itself after the
//! read and its re-check sees the work.
//!
//! The lock also guards `waiting` and `tokens`: a signal claims one waiting
//! worker (`waiting −= 1`, `tokens += 1`, `searching += 1`) and whichever
//! waiter returns first takes the token; a waiter that returns without one
//! (`notify_all`, a spurious wake-up) counts itself. So `searching` never
//! counts a worker twice or one that is not coming.
//!
//! # Memory ordering
//!
//! `sleepers` and `searching` are read by publishers without the lock, after
//! a `SeqCst` fence that follows the publish. Predicates passed to `sleep`
//! must read the published state with `SeqCst` (the crossbeam deques'
//! `is_empty` does, and so does `Admission::is_drained`).
//!
//! # Model checking
//!
//! `loom_tests/parking.rs` runs this protocol against the real [`Scheduler`]
//! under loom. Under the `loom` feature (only) a `Sleep` can carry a deliberate
//! `sync::fault::Fault` (no re-check, unlocked notify, a
//! searcher that parks still counted as searching) that the models must
//! reject.

use super::Scheduler;
use crate::sync::atomic::{fence, AtomicUsize, Ordering::SeqCst};
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, CachePadded, Condvar, Mutex};

/// What the parking lock guards.
#[derive(Default)]
struct Parked {
    /// Workers blocked in (or returning from) the wait, not yet claimed.
    waiting: usize,
    /// Signals sent for claimed workers, not yet taken by a returning waiter.
    tokens: usize,
}

/// The parking lot of a pool's workers.
pub struct Sleep {
    /// Workers between step 2 and their withdrawal. Written by workers under
    /// `lock`; read by notifiers.
    sleepers: CachePadded<AtomicUsize>,
    /// Workers looking for work while not parked (spinning idle ones, and
    /// woken ones until they find work or park).
    searching: CachePadded<AtomicUsize>,
    /// At most this many workers search by spinning (half the pool, at least
    /// one); the others park at once. Spinning thieves contend on the queues
    /// they poll, the producers' lanes above all.
    max_searching: usize,
    lock: Mutex<Parked>,
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
    /// A parking lot with nobody in it, for one worker.
    pub fn new() -> Self {
        Self::for_workers(1)
    }

    /// A parking lot with nobody in it, for a pool of `workers`.
    pub fn for_workers(workers: usize) -> Self {
        Sleep {
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            searching: CachePadded::new(AtomicUsize::new(0)),
            max_searching: (workers / 2).max(1),
            lock: Mutex::new(Parked::default()),
            wake: Condvar::new(),
            #[cfg(feature = "loom")]
            fault: fault::injected().filter(|f| {
                matches!(
                    f,
                    Fault::NoRecheck | Fault::UnlockedNotify | Fault::StaleSearch
                )
            }),
        }
    }

    /// The parking lot of `scheduler` (for the loom models and benches, which
    /// drive a [`Scheduler`] from outside the crate).
    pub fn of<T>(scheduler: &Scheduler<T>) -> &Sleep {
        &scheduler.sleep
    }

    /// A worker that found no work starts searching for it, unless enough
    /// workers already search; then it returns false and should park (its
    /// re-check in [`sleep`](Self::sleep) still sees any work published).
    #[inline]
    pub fn try_start_search(&self) -> bool {
        let mut n = self.searching.load(SeqCst);
        loop {
            if n >= self.max_searching {
                return false;
            }
            match self
                .searching
                .compare_exchange_weak(n, n + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
    }

    /// A searching worker found work and stops searching. The last searcher
    /// wakes a parked worker to search on: what it found may be the first of
    /// more.
    #[inline]
    pub fn found_work(&self) {
        if self.searching.fetch_sub(1, SeqCst) == 1 {
            self.notify_one();
        }
    }

    /// A searching worker found nothing and stops searching, before it parks
    /// (or exits).
    #[inline]
    pub fn end_search(&self) {
        // Loom only: with `Fault::StaleSearch` the worker parks still counted
        // as searching, so publishers expect it to find their work.
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::StaleSearch) {
            return;
        }
        self.searching.fetch_sub(1, SeqCst);
    }

    /// Parks the calling worker, which is not searching, unless `ready()`
    /// (work available, or the run is over) holds once it has announced
    /// itself. Returns with the worker counted as searching. May return
    /// spuriously: callers look for work again.
    pub fn sleep(&self, ready: impl Fn() -> bool) {
        // Loom only: with `Fault::NoRecheck` the re-check in step 3 never sees
        // work, so the worker announces itself and waits without looking again.
        #[cfg(feature = "loom")]
        let ready = || self.fault != Some(Fault::NoRecheck) && ready();
        let mut guard = lock(&self.lock);
        self.sleepers.fetch_add(1, SeqCst);
        if ready() {
            self.searching.fetch_add(1, SeqCst);
            self.sleepers.fetch_sub(1, SeqCst);
            return;
        }
        guard.waiting += 1;
        let mut guard = wait(&self.wake, guard);
        if guard.tokens > 0 {
            // Claimed by a notifier, which counted us as searching.
            guard.tokens -= 1;
        } else {
            guard.waiting -= 1;
            self.searching.fetch_add(1, SeqCst);
        }
        self.sleepers.fetch_sub(1, SeqCst);
        drop(guard);
    }

    /// Wakes one parked worker, if no worker is searching and one is parked.
    /// Call after publishing the work.
    #[inline]
    pub fn notify_one(&self) {
        // SeqCst fence: orders the caller's publish before the reads.
        fence(SeqCst);
        if self.searching.load(SeqCst) > 0 || self.sleepers.load(SeqCst) == 0 {
            return;
        }
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::UnlockedNotify) {
            // Loom only, `Fault::UnlockedNotify`: without the lock the signal
            // can fall between a worker's re-check and its wait.
            self.wake.notify_one();
            return;
        }
        let mut guard = lock(&self.lock);
        if guard.waiting > 0 {
            guard.waiting -= 1;
            guard.tokens += 1;
            self.searching.fetch_add(1, SeqCst);
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

    /// Workers searching for work right now.
    pub fn searching(&self) -> usize {
        self.searching.load(SeqCst)
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
            assert!(s.try_start_search());
            assert!(!s.try_start_search(), "one searcher for a pool of one");
            while !w.load(SeqCst) {
                s.end_search();
                s.sleep(|| w.load(SeqCst));
            }
            s.found_work();
        });
        std::thread::sleep(Duration::from_millis(20));
        work.store(true, SeqCst);
        sleep.notify_one();
        t.join().unwrap();
        assert_eq!(sleep.sleepers(), 0);
        assert_eq!(sleep.searching(), 0);
    }
}
