//! The public completion hook: [`Observer`], told each task's [`Outcome`].
//!
//! Invariant: an observer runs on the completing thread, inside the task's
//! completion (a worker, or the writer in group-commit mode): it must be cheap.

use crate::processor::{Output, ProcessError};
use crate::task::Task;

/// How a task ended, as told to an [`Observer`].
#[derive(Debug)]
pub enum Outcome<'a> {
    /// Processed successfully (and, in group-commit mode, committed).
    Succeeded {
        /// What the processor produced.
        output: &'a Output,
    },
    /// Completed as a duplicate of a key in flight or already done.
    Duplicate {
        /// The recorded output, when the key was already done.
        output: Option<&'a str>,
    },
    /// Failed, and not dead-lettered (no store, a key conflict, or the record
    /// could not be committed).
    Failed {
        /// The last error.
        error: &'a ProcessError,
    },
    /// Failed for good and moved to the dead-letter queue.
    DeadLettered {
        /// The last error.
        error: &'a ProcessError,
    },
}

/// Told about every task as it completes (on the completing thread: a worker,
/// or the writer in group-commit mode). Keep it cheap.
pub trait Observer: Send + Sync + 'static {
    /// `task` completed with `outcome`.
    fn on_complete(&self, task: &Task, outcome: Outcome<'_>);
}

impl<F: Fn(&Task, Outcome<'_>) + Send + Sync + 'static> Observer for F {
    fn on_complete(&self, task: &Task, outcome: Outcome<'_>) {
        self(task, outcome)
    }
}
