//! taskq: a bounded, work-stealing task-queue engine for image-variant jobs.
//!
//! # How a task flows
//!
//! Producers ([`Submitter`]s, fed by the library API or by the command
//! line's streaming file reader, in `taskq-cli`) pass each [`Task`] through `Admission`, an
//! atomic depth counter that enforces the capacity bound (block or reject). An
//! admitted task is pushed on a global injector; worker threads, pinned to cores,
//! take from their own deque, steal batches from the injector or from siblings,
//! and park when there is nothing to do. A worker runs the [`Processor`] (a
//! panic is caught and counted as a failure), records latency and service time in
//! its own HDR histograms, and releases the task's admission slot. Shutdown closes
//! admission, drains every admitted task, joins the workers and merges their
//! recorders into one [`Report`].
//!
//! # Example
//!
//! ```
//! # if cfg!(feature = "loom") { return Ok(()); }
//! use taskq::{Engine, EngineConfig, Noop, Task};
//!
//! let engine = Engine::start(EngineConfig { workers: 2, capacity: 64, ..Default::default() }, Noop)?;
//! let submitter = engine.submitter();
//! for i in 0..1000 {
//!     submitter.submit(Task::new(&format!("img/{i:06}.jpg"), "200x200".parse()?)?)?;
//! }
//! let report = engine.shutdown();
//! assert_eq!(report.counts.succeeded, 1000);
//! assert!(report.queue_depth.max <= 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub(crate) mod admission;
pub mod config;
pub mod engine;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod processor;
pub mod retry;
pub(crate) mod scheduler;
pub mod setting;
pub(crate) mod sync;
pub mod task;

/// The engine's internal building blocks, exported for the criterion benches
/// and the loom models only. Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::admission::{Admission, AdmitError, Drained, ReleaseBatch};
    pub use crate::idempotency::bloom::Bloom;
    #[cfg(feature = "loom")]
    pub use crate::idempotency::writer::{run as run_writer, WriterSettings};
    pub use crate::scheduler::sleep::Sleep;
    #[cfg(feature = "loom")]
    pub use crate::scheduler::worker::{work as worker_loop, WorkerHost};
    pub use crate::scheduler::{Lane, LaneView, Scheduler, Source};
    #[cfg(feature = "loom")]
    pub use crate::sync::fault::{with_fault, Fault};
    /// A worker's local deque: `crossbeam-deque`'s, or its stand-in under loom.
    #[cfg(feature = "loom")]
    pub use crate::sync::loom_deque::Worker;
    /// A worker's local deque: `crossbeam-deque`'s, or its stand-in under loom.
    #[cfg(not(feature = "loom"))]
    pub use crossbeam_deque::Worker;
}

pub use admission::AdmissionMode;
pub use config::{EngineConfig, PinMode};
pub use engine::{
    Engine, EngineBuilder, Live, LiveWorker, Observer, Outcome, Progress, ProgressHandle,
    SubmitError, Submitter,
};
pub use error::Error;
pub use idempotency::{Durability, StoreConfig};
pub use metrics::{Report, RunStatus};
pub use processor::{
    Attempt, CpuHash, ErrorClass, Noop, Output, ProcessError, Processor, ProcessorReport,
    Simulated, SimulatedConfig,
};
pub use retry::RetryPolicy;
pub use task::{Size, Task, TaskError};
