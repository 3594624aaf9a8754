//! [`Live`]: what a running engine has done so far, read from any thread
//! without the workers doing anything for it.
//!
//! Invariant: a live view only reads: the workers' tallies (single-writer
//! atomics, see `metrics::live`), the producers' counters and admission's
//! depth. Once the engine has drained, a view's counts equal the report's.

use std::time::Instant;

use super::Shared;
use crate::metrics::{Counts, Samples};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::lock;

/// A live view of a running engine: counts so far, depth against capacity,
/// each worker's work, and the latency and service-time histograms.
///
/// It is a racy snapshot: each number is one its writer wrote, not all from
/// one instant (a task may show as admitted and not yet completed). Counters
/// only grow. After [`Engine::shutdown`](super::Engine::shutdown) has drained
/// the engine, a view's counts equal the report's (`invalid` aside: input
/// validation happens before the engine).
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return Ok(()); }
/// use taskq::{Engine, EngineConfig, Noop, Task};
/// let engine = Engine::start(EngineConfig::default(), Noop)?;
/// let live = engine.progress_handle();
/// engine.submitter().submit(Task::new("img/a.jpg", "200x200".parse()?)?)?;
/// let report = engine.shutdown();
/// let view = live.live();
/// assert_eq!(view.counts.succeeded, report.counts.succeeded);
/// assert_eq!(view.latency.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Live {
    /// Counts so far (`invalid` is always 0 here).
    pub counts: Counts,
    /// Tasks held now.
    pub depth: usize,
    /// Highest depth so far.
    pub max_depth: usize,
    /// The most tasks the engine holds.
    pub capacity: usize,
    /// Whether admission is closed (shutdown begun).
    pub closed: bool,
    /// Each worker, by index.
    pub workers: Vec<LiveWorker>,
    /// Tasks completed on the writer thread (group commit).
    pub completed_by_writer: u64,
    /// Submit → completion, one sample per completed task (nanoseconds).
    pub latency: Samples,
    /// Σ of the latency samples, in seconds (exact, not from the buckets).
    pub latency_sum_s: f64,
    /// Start → end of each processing attempt (nanoseconds).
    pub service: Samples,
    /// Σ of the service-time samples, in seconds.
    pub service_sum_s: f64,
    /// Seconds since the engine started.
    pub uptime_s: f64,
}

impl Live {
    /// Tasks completed so far (succeeded, duplicates, failed and
    /// dead-lettered), on the workers and the writer together.
    pub fn completed(&self) -> u64 {
        self.workers.iter().map(|w| w.tasks).sum::<u64>() + self.completed_by_writer
    }
}

/// One worker in a [`Live`] view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveWorker {
    /// Its index (the `taskq-worker-N` thread).
    pub index: usize,
    /// Tasks it completed.
    pub tasks: u64,
    /// Processing attempts it ended.
    pub attempts: u64,
    /// Batches it stole from siblings.
    pub steals: u64,
    /// Seconds it spent executing tasks.
    pub busy_s: f64,
    /// Whether it is inside a processor call now.
    pub busy: bool,
}

impl Shared {
    pub(super) fn live(&self, started: Instant) -> Live {
        let workers = self.tallies.len() - 1;
        let mut counts = Counts::default();
        let mut latency = Samples::new();
        let mut service = Samples::new();
        let (mut latency_ns, mut service_ns) = (0u64, 0u64);
        let mut list = Vec::with_capacity(workers);
        for (index, t) in self.tallies.iter().enumerate() {
            counts.started += t.started.get();
            counts.attempts += t.attempts.get();
            counts.succeeded += t.succeeded.get();
            counts.failed += t.failed.get();
            counts.duplicates += t.duplicates.get();
            counts.retried += t.retried.get();
            counts.dead_lettered += t.dead_lettered.get();
            latency.add(&t.latency);
            service.add(&t.service);
            latency_ns += t.residence_ns.get();
            service_ns += t.busy_ns.get();
            if index < workers {
                list.push(LiveWorker {
                    index,
                    tasks: t.completed(),
                    attempts: t.attempts.get(),
                    steals: t.steals.get(),
                    busy_s: t.busy_ns.get() as f64 / 1e9,
                    busy: t.busy(),
                });
            }
        }
        for p in lock(&self.producers).iter() {
            counts.submitted += p.submitted.load(Relaxed);
            counts.admitted += p.admitted.load(Relaxed);
            counts.rejected += p.rejected_full.load(Relaxed) + p.rejected_closed.load(Relaxed);
        }
        Live {
            counts,
            depth: self.admission.depth(),
            max_depth: self.admission.max_depth(),
            capacity: self.admission.capacity(),
            closed: self.admission.is_closed(),
            workers: list,
            completed_by_writer: self.tallies[workers].completed(),
            latency,
            latency_sum_s: latency_ns as f64 / 1e9,
            service,
            service_sum_s: service_ns as f64 / 1e9,
            uptime_s: started.elapsed().as_secs_f64(),
        }
    }
}
