//! Per-worker recorders, merged once at the end into the [`Report`].
//!
//! Each worker owns a `Recorder`: counters and two sample counts in HDR
//! histogram layout (`Samples`: latency submit→completion, service
//! start→end), written only by that worker, so recording costs a few
//! nanoseconds and no shared cache line. The counters and histograms are
//! single-writer atomics (`Tallies`: a relaxed load and store, the
//! instructions of a plain increment), so a monitor reads them live
//! ([`Live`](crate::engine::Live)) without the workers doing anything for it. Shutdown joins
//! the workers and merges their recorders (`Recorder::merge`); the merged
//! counters are by construction the sums of the per-worker ones, and each
//! histogram holds one sample per completed task.
//!
//! The time-weighted mean queue depth comes from Little's law: the integral of
//! depth over time is the sum of the time each task spent in the engine, so
//! `mean depth = Σ residence / elapsed`, exact and free to compute.

mod live;
mod recorder;
mod report;
mod samples;
pub use samples::Samples;
mod summary;

pub(crate) use live::Tallies;
pub(crate) use recorder::Recorder;
pub use report::{
    Counts, FailureCount, InvalidTask, Percentiles, QueueDepth, Rates, Rejections, Report,
    RetryStats, RunStatus, StoreReport, WorkerReport, MAX_INVALID_LISTED,
};
// The processor's section of the report is the processor module's type; it is
// re-exported here so that `metrics::ProcessorReport` keeps working.
pub use crate::processor::{ProcessorReport, StageReport};
