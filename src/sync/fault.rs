//! Deliberate bugs, compiled only under loom, that prove the models can fail.
//!
//! Each [`Fault`] turns one step of a protocol into a plausible mistake. A loom
//! model runs the engine's own code with the fault switched on and must reject
//! it (a failed assertion, or loom's deadlock detection); the `should_panic`
//! tests in `loom_tests/` check that it does. Without the `loom` feature none of
//! this exists: the types that consult it carry no fault field at all, so the
//! production code path is the one the models check with no fault injected.
//!
//! A fault is injected at construction: [`with_fault`] sets it for the calling
//! thread while a closure runs, and the constructors of the affected types
//! (`Admission::new`, `Sleep::new`, `ClaimTable::new`, `Handoff::new`,
//! `DelayQueue::new`) pick it up. So a fault reaches a type built deep inside
//! `Engine::start` as well as one a model builds itself. (A thread-local, not
//! a `static`: tests run in parallel, and every loom thread of a model runs on
//! the thread that called `loom::model`.)

use std::cell::Cell;

/// A deliberate bug in one protocol step (loom builds only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Admission: reserve a slot with a load, a check and a plain store instead
    /// of one compare-and-swap, so two producers can both take the last slot.
    CheckThenAct,
    /// Admission: a release never wakes parked producers.
    SkipNotify,
    /// Admission: acquire/release orderings instead of `SeqCst` on the
    /// `waiters`/`state` store-load pair, so the parking producer and the
    /// releaser can each miss the other's write.
    WeakOrdering,
    /// Admission: `close` reads the depth, then sets `CLOSED` in a second step,
    /// so the last release can land in between and nobody is told `Drained`.
    SplitClose,
    /// Sleep: a worker waits without re-checking for work after announcing
    /// itself, so work published just before the announcement is missed.
    NoRecheck,
    /// Sleep: `notify_one` signals without taking the lock, so the signal can
    /// fall between a worker's re-check and its wait.
    UnlockedNotify,
    /// Sleep: a searching worker parks without `end_search`, still counted as
    /// searching, so publishers skip the wake-up it needs.
    StaleSearch,
    /// ClaimTable: `claim` looks the key up under the lock, drops it, then
    /// inserts under a second lock, so two claimants can both find the key
    /// vacant and both win.
    CheckThenInsert,
    /// ClaimTable: `finish` gives the entry up at once (as a failure does)
    /// instead of marking it done, so the key leaves the cache before the
    /// writer has committed its record.
    EarlyRelease,
    /// Handoff: `recv_batch` never wakes senders parked on a full queue.
    SkipNotFull,
    /// Handoff: a send never wakes the receiver parked on an empty queue.
    SkipNotEmpty,
    /// Handoff: `send_all` takes the next item before it checks for room, and
    /// drops it when the queue is full: a record handed to the writer is lost.
    LoseOnFull,
    /// Handoff: the receiver's first batch is copied out but left queued, so
    /// the next receive takes it again: records delivered twice. Needs a
    /// `Handoff` built with `Handoff::new_cloning` (it copies the items).
    DeliverTwice,
    /// Writer: evicts a committed batch's keys from the hot cache before it
    /// commits the batch, so a key can leave the cache unrecorded.
    EvictBeforeCommit,
    /// DelayQueue: `push` never wakes the timer thread.
    SkipPushNotify,
    /// DelayQueue: the timer thread returns as soon as it sees `close`, even
    /// with items still waiting (they are never handed back).
    CloseDropsWaiting,
}

thread_local! {
    static INJECTED: Cell<Option<Fault>> = const { Cell::new(None) };
}

/// Runs `f` with `fault` injected into every `Admission`, `Sleep`,
/// `ClaimTable`, `Handoff` and `DelayQueue` it constructs on this thread (each
/// type takes only the faults that concern it).
/// Inside a model: `with_fault(Fault::SkipNotify, || Admission::new(1))`, or
/// `with_fault(Fault::SplitClose, || Engine::start(config, processor))`.
pub fn with_fault<R>(fault: Fault, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Fault>);
    impl Drop for Reset {
        fn drop(&mut self) {
            INJECTED.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(INJECTED.with(|c| c.replace(Some(fault))));
    f()
}

/// The fault injected on this thread right now, if any.
pub(crate) fn injected() -> Option<Fault> {
    INJECTED.with(Cell::get)
}
