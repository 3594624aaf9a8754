//! A task inside the engine ([`Job`], with its [`RetryState`]) and what one
//! worker owns ([`WorkerCtx`]).
//!
//! Invariant: a job carries no retry state until it first enters the delay
//! queue; a `WorkerCtx` is touched only by its own worker thread.

use crate::admission::ReleaseBatch;
use crate::idempotency::writer::Pending;
use crate::idempotency::StoreReader;
use crate::metrics::Recorder;
use crate::processor::ProcessError;
use crate::task::Task;

use super::pool;

/// A task inside the engine.
pub(crate) struct Job {
    pub(crate) task: Task,
    /// Clock reading (raw ticks) when `submit` was called.
    pub(crate) submitted_at: u64,
    /// This job holds its key's claim (set by its first attempt).
    pub(crate) claimed: bool,
    /// State of a job that has been through the delay queue (boxed: most jobs
    /// never are, and a small job moves between threads cheaply).
    pub(crate) retry: Option<Box<RetryState>>,
}

/// What a job that waited in the delay queue carries.
#[derive(Default)]
pub(crate) struct RetryState {
    /// When its first attempt failed, Unix milliseconds (0: none failed).
    pub(crate) first_failed_at: u64,
    /// Clock reading when it entered the delay queue (0: not waiting).
    pub(crate) queued_at: u64,
    /// The error that sent it to the delay queue.
    pub(crate) last_error: Option<ProcessError>,
    /// Handed back by an expiring delay queue: dead-letter, do not run.
    pub(crate) expired: bool,
}

impl Job {
    pub(crate) fn new(task: Task, submitted_at: u64) -> Self {
        Job {
            task,
            submitted_at,
            claimed: false,
            retry: None,
        }
    }

    /// The retry state, created on first use.
    pub(crate) fn retry_mut(&mut self) -> &mut RetryState {
        self.retry.get_or_insert_with(Default::default)
    }
}

/// What one worker owns.
pub(crate) struct WorkerCtx {
    pub(crate) index: usize,
    pub(crate) recorder: Recorder,
    pub(crate) release: ReleaseBatch,
    /// Its history reader, opened on first need.
    pub(crate) reader: Option<Box<dyn StoreReader>>,
    /// Records not yet handed to the writer.
    pub(crate) pending: Vec<Pending>,
    /// Clock reading when the oldest of `pending` was buffered.
    pub(crate) pending_since: u64,
    /// Finished jobs' boxes, on their way back to the producers.
    pub(crate) spare: pool::Spare,
}
