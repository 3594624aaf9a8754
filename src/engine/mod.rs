//! The engine: start the threads, take submissions, run tasks, drain, report.
//!
//! Threads: `workers` pinned workers; a timer thread for the retry delay queue;
//! with a store, one writer thread that owns the write connection.
//!
//! # Shutdown protocol
//!
//! 1. [`Engine::shutdown`] closes admission: from now on every submission fails
//!    with [`SubmitError::Closed`]; producers parked for room wake and get it too.
//! 2. Workers keep running what was admitted, retries included. Each completion
//!    is released to admission (in batches; a worker that runs dry releases what
//!    it holds and hands its buffered records to the writer).
//! 3. With a shutdown timeout, if the engine has not drained in time, pending
//!    retries are handed back at once and every task not yet run is
//!    dead-lettered with kind `shutdown` instead of run.
//! 4. The release — or the close — that leaves a closed engine at depth 0 is
//!    told so ([`Drained`](crate::admission::Drained)) and wakes every parked
//!    worker. Depth counts queued, running, retry-waiting and (group commit)
//!    commit-waiting tasks, so depth 0 after the close means no task is anywhere
//!    in the engine.
//! 5. Each worker, finding the engine drained, exits and hands back its recorder.
//! 6. The writer's queue is closed; the writer commits what is left and exits
//!    (promise 5: every success is in the store when `shutdown` returns). The
//!    timer thread exits.
//! 7. The recorders are merged into the [`Report`](crate::metrics::Report).
//!
//! # Files
//!
//! This file holds the [`Engine`] handle and its accessors; the rest:
//!
//! - `job`: a task inside the engine, and what one worker owns.
//! - `observer`: the public completion hook.
//! - `shared`: the state every engine thread shares; completion, close, drain
//!   and live progress over it.
//! - `builder`: [`EngineBuilder`] and start-up (validation, idempotency, threads).
//! - `submit`: [`Submitter`], the producer handle, and [`SubmitError`].
//! - `pool`: finished jobs' boxes on their way back to the producers.
//! - `worker`: the engine's side of the worker loop.
//! - `execute`: running one job: claim, process, retry, record, complete.
//! - `shutdown`: [`Engine::shutdown`].
//! - `report`: merging the recorders into the [`Report`](crate::metrics::Report).

mod builder;
mod execute;
mod job;
mod live;
mod observer;
mod pool;
mod report;
mod shared;
mod shutdown;
mod submit;
mod worker;

use std::time::Instant;

use crate::config::EngineConfig;
use crate::idempotency::writer::WriterReport;
use crate::metrics::Recorder;
use crate::sync::thread::JoinHandle;
use crate::sync::Arc;

pub use builder::EngineBuilder;
pub(crate) use job::{Job, WorkerCtx};
pub use live::{Live, LiveWorker};
pub use observer::{Observer, Outcome};
pub(crate) use shared::Shared;
pub use shared::{Progress, ProgressHandle};
pub use submit::{SubmitError, Submitter};
pub(crate) use worker::WorkerExit;

/// A running engine: pinned workers over work-stealing deques behind a bounded
/// admission counter, with idempotency, retries and a dead-letter queue.
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return; }
/// use taskq::{Engine, EngineConfig, Noop, Task};
/// let engine = Engine::start(EngineConfig::default(), Noop).unwrap();
/// let submitter = engine.submitter();
/// submitter.submit(Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap()).unwrap();
/// let report = engine.shutdown();
/// assert_eq!(report.counts.admitted, 1);
/// assert_eq!(report.latency_ms.count, 1);
/// ```
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<WorkerExit>>,
    writer: Option<JoinHandle<(Recorder, WriterReport)>>,
    timer: Option<JoinHandle<()>>,
    config: EngineConfig,
    started: Instant,
}

impl Engine {
    /// A new producer handle.
    pub fn submitter(&self) -> Submitter {
        Submitter::new(self.shared.clone())
    }

    /// Tasks held right now.
    pub fn depth(&self) -> usize {
        self.shared.admission.depth()
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A live snapshot of progress.
    pub fn progress(&self) -> Progress {
        self.shared.progress()
    }

    /// A live view of counts, workers and histograms (see [`Live`]).
    pub fn live(&self) -> Live {
        self.shared.live(self.started)
    }

    /// When the engine started: the report's `elapsed_s` runs from here to
    /// the moment every task had completed, every record was committed and
    /// every engine thread was joined (before the report was built).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// A handle that reads progress (and can stop admission) from another
    /// thread, also while [`shutdown`](Self::shutdown) drains.
    pub fn progress_handle(&self) -> ProgressHandle {
        ProgressHandle {
            shared: self.shared.clone(),
            started: self.started,
        }
    }

    /// Stops admission without waiting: submissions fail with
    /// [`SubmitError::Closed`] from now on. [`shutdown`](Self::shutdown) still
    /// has to be called to drain and collect the report.
    pub fn close(&self) {
        self.shared.close();
    }
}
