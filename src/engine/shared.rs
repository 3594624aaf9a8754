//! State shared by the engine handle, submitters, workers, the writer and the
//! timer ([`Shared`]), the completion and close paths over it, and the live
//! [`Progress`] read from it.
//!
//! Invariant: each atomic field has one writer, named on the field; whether
//! the engine is drained is decided by admission alone, and the release or
//! close that leaves a closed engine at depth 0 calls [`Shared::on_drained`].

use std::time::Duration;

use crate::admission::{Admission, AdmissionMode};
use crate::idempotency::setup::Idem;
use crate::processor::{ErrorClass, Processor};
use crate::retry::{DelayQueue, RetryPolicy};
use crate::scheduler::Scheduler;
use std::sync::Arc as StdArc;

use crate::metrics::Tallies;
use crate::sync::atomic::{AtomicBool, Ordering::Relaxed};
use crate::sync::{lock, Arc, Condvar, Mutex};
use crate::task::Task;

use super::submit::ProducerStats;
use super::{execute, pool, Job, Live, Observer, Outcome, WorkerCtx};

/// State shared by the engine handle, submitters, workers, the writer and the timer.
pub(crate) struct Shared {
    pub(crate) admission: Admission,
    pub(crate) scheduler: Scheduler<Box<Job>>,
    /// Finished jobs' boxes, for producers to refill.
    pub(crate) pool: pool::JobPool,
    pub(crate) clock: quanta::Clock,
    pub(super) processor: Box<dyn Processor>,
    pub(crate) mode: AdmissionMode,
    pub(crate) idem: Option<Idem>,
    pub(super) retry: RetryPolicy,
    pub(super) delay: DelayQueue<Box<Job>>,
    pub(super) task_timeout: Option<Duration>,
    pub(super) panic_class: ErrorClass,
    pub(super) observer: Option<Box<dyn Observer>>,
    /// Set when shutdown timed out: tasks not yet run are dead-lettered.
    /// Written once by `shutdown`, read by workers.
    pub(super) expiring: AtomicBool,
    /// Set when the writer failed: admission is closed and tasks not yet run
    /// are failed unrecorded. Written once by the writer, read by workers.
    pub(super) storage_down: AtomicBool,
    /// The live tallies of each worker (by index) and, last, of the writer
    /// thread (group-commit completions). Each is written only by its
    /// thread, read by [`Engine::progress`](super::Engine::progress) and
    /// [`Engine::live`](super::Engine::live).
    pub(super) tallies: Box<[StdArc<Tallies>]>,
    /// One counter block per submitter handle ever made.
    pub(crate) producers: Mutex<Vec<Arc<ProducerStats>>>,
    /// Set once drained, for `shutdown`'s timed wait.
    pub(super) drained: Mutex<bool>,
    pub(super) drained_cv: Condvar,
    /// The first storage error (it stops admission).
    pub(super) storage_error: Mutex<Option<String>>,
}

impl Shared {
    /// Ends a task's stay in the engine on a worker: one latency sample, one
    /// slot released.
    #[inline]
    pub(crate) fn complete(&self, submitted_at: u64, now: u64, ctx: &mut WorkerCtx) {
        ctx.recorder
            .complete(self.clock.delta_as_nanos(submitted_at, now));
        if ctx.release.add(&self.admission).is_some() {
            self.on_drained();
        }
    }

    #[inline]
    pub(super) fn observe(&self, task: &Task, outcome: Outcome<'_>) {
        if execute::log_enabled(tracing::Level::DEBUG) {
            execute::log_outcome(task, &outcome);
        }
        if let Some(o) = &self.observer {
            o.on_complete(task, outcome);
        }
    }

    /// A worker found nothing to do: hand over buffered records and held slots,
    /// so that neither the writer, a blocked producer nor the drain waits on it.
    pub(crate) fn idle(&self, ctx: &mut WorkerCtx) {
        if self.idem.is_some() {
            self.flush_writes(ctx);
        }
        self.scheduler.reap_closed_lanes();
        if ctx.release.flush(&self.admission).is_some() {
            self.on_drained();
        }
    }

    pub(super) fn progress(&self) -> Progress {
        Progress {
            completed: self.tallies.iter().map(|t| t.completed()).sum(),
            depth: self.admission.depth(),
            max_depth: self.admission.max_depth(),
        }
    }

    /// The engine is closed and holds nothing: wake every worker so it can exit,
    /// and `shutdown` if it waits with a timeout.
    pub(crate) fn on_drained(&self) {
        self.scheduler.sleep.notify_all();
        *lock(&self.drained) = true;
        self.drained_cv.notify_all();
    }

    /// Stops admission (shutdown, or a storage failure).
    pub(super) fn close(&self) {
        if self.admission.close().is_some() {
            self.on_drained();
        }
    }

    pub(super) fn storage_failed(&self, error: String) {
        self.storage_down.store(true, Relaxed);
        let mut slot = lock(&self.storage_error);
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.close();
    }
}

/// Live numbers of a running engine (a racy snapshot, for progress displays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Tasks completed so far.
    pub completed: u64,
    /// Tasks held now.
    pub depth: usize,
    /// Highest depth so far.
    pub max_depth: usize,
}

/// Reads live [`Progress`] (and the fuller [`Live`] view) of an engine from
/// any thread.
#[derive(Clone)]
pub struct ProgressHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) started: std::time::Instant,
}

impl ProgressHandle {
    /// A live snapshot of progress.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// A live view of counts, workers and histograms (see [`Live`]); it
    /// stays readable after the engine has shut down.
    ///
    /// It reads every worker's histograms (a few hundred KiB each): call it
    /// when a monitor asks, not per task.
    pub fn live(&self) -> Live {
        self.shared.live(self.started)
    }

    /// Stops admission from any thread (for example a signal handler's thread):
    /// submissions fail with [`SubmitError::Closed`](super::SubmitError::Closed)
    /// from now on.
    pub fn close(&self) {
        self.shared.close();
    }
}
