//! The engine: start workers, take submissions, run tasks, drain, report.
//!
//! # Shutdown protocol
//!
//! 1. [`Engine::shutdown`] closes admission: from now on every submission fails
//!    with [`SubmitError::Closed`]; producers parked for room wake and get it too.
//! 2. Workers keep running what was admitted. Each completion is released to
//!    admission (in batches; a worker that runs dry releases what it holds).
//! 3. The release — or the close — that leaves a closed engine at depth 0 is
//!    told so ([`Drained`](crate::admission::Drained)) and wakes every parked
//!    worker. Depth counts queued, running and retry-waiting tasks, so depth 0
//!    after the close means no task is anywhere in the engine.
//! 4. Each worker, finding the engine drained, exits and hands back its recorder.
//! 5. `shutdown` joins the workers and merges the recorders into the [`Report`].

use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::admission::{Admission, AdmissionMode, AdmitError, ReleaseBatch};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::metrics::{
    Counts, FailureCount, Percentiles, QueueDepth, Rates, Recorder, Rejections, Report, RetryStats,
    WorkerReport,
};
use crate::processor::{Attempt, ErrorClass, Processor};
use crate::scheduler::worker::{self, WorkerExit};
use crate::scheduler::{pin, Lane, Scheduler};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::thread::{Builder, JoinHandle};
use crate::sync::{lock, Arc, CachePadded, Mutex};
use crate::task::Task;

/// A task inside the engine, with the time it was submitted.
pub(crate) struct Job {
    pub(crate) task: Task,
    /// Clock reading (raw ticks) when `submit` was called.
    pub(crate) submitted_at: u64,
}

/// What one worker owns: its recorder, its pending releases.
pub(crate) struct WorkerCtx {
    pub(crate) index: usize,
    pub(crate) recorder: Recorder,
    pub(crate) release: ReleaseBatch,
}

/// State shared by the engine handle, submitters and workers.
pub(crate) struct Shared {
    pub(crate) admission: Admission,
    pub(crate) scheduler: Scheduler<Job>,
    pub(crate) clock: quanta::Clock,
    processor: Box<dyn Processor>,
    mode: AdmissionMode,
    /// Completed tasks per worker, for live progress. Each slot is written only by
    /// its worker (a plain store), read by [`Engine::progress`].
    completed: Box<[CachePadded<AtomicU64>]>,
    /// One counter block per submitter handle ever made.
    producers: Mutex<Vec<Arc<ProducerStats>>>,
}

impl Shared {
    /// Runs one job to completion on the calling worker and returns the clock
    /// reading at its end.
    ///
    /// `start` is when the worker turned to this job: the end of its previous
    /// job when it went straight on, or a fresh reading after it was idle. So
    /// service time is the worker's whole time on the task, fetching included,
    /// and costs one clock read per task instead of two.
    pub(crate) fn execute(&self, job: Job, start: u64, ctx: &mut WorkerCtx) -> u64 {
        let Job {
            mut task,
            submitted_at,
        } = job;
        let attempt = Attempt {
            number: task.attempts + 1,
            deadline: None,
        };
        let result = catch_unwind(AssertUnwindSafe(|| self.processor.process(&task, &attempt)));
        let end = self.clock.raw();
        task.attempts = attempt.number;
        let rec = &mut ctx.recorder;
        rec.served(self.clock.delta_as_nanos(start, end));
        if attempt.number == 1 {
            rec.started += 1;
        }
        match result {
            Ok(Ok(_output)) => rec.succeeded += 1,
            Ok(Err(e)) => {
                rec.failure(e.class, &e.kind);
                rec.failed += 1;
            }
            Err(_panic) => {
                rec.failure(ErrorClass::Permanent, "panic");
                rec.failed += 1;
            }
        }
        self.complete(submitted_at, end, ctx);
        end
    }

    /// Ends a task's stay in the engine: one latency sample, one slot released.
    #[inline]
    fn complete(&self, submitted_at: u64, now: u64, ctx: &mut WorkerCtx) {
        ctx.recorder
            .complete(self.clock.delta_as_nanos(submitted_at, now));
        self.completed[ctx.index].store(ctx.recorder.completed(), Relaxed);
        if ctx.release.add(&self.admission).is_some() {
            self.on_drained();
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            completed: self.completed.iter().map(|c| c.load(Relaxed)).sum(),
            depth: self.admission.depth(),
            max_depth: self.admission.max_depth(),
        }
    }

    /// The engine is closed and holds nothing: wake every worker so it can exit.
    pub(crate) fn on_drained(&self) {
        self.scheduler.sleep.notify_all();
    }
}

/// Per-submitter counters. Single writer (the handle, which is `!Sync`), so
/// increments are a relaxed load and store rather than a locked RMW.
#[derive(Default)]
struct ProducerStats {
    submitted: AtomicU64,
    admitted: AtomicU64,
    rejected_full: AtomicU64,
    rejected_closed: AtomicU64,
}

#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// Why a submission was refused. Either way the task is handed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The engine holds `capacity` tasks (reject mode, or [`Submitter::try_submit`]).
    #[error("engine is at capacity")]
    Full(Task),
    /// The engine stopped admitting (shutdown began).
    #[error("engine is shut down")]
    Closed(Task),
}

impl SubmitError {
    /// The refused task.
    pub fn into_task(self) -> Task {
        match self {
            SubmitError::Full(t) | SubmitError::Closed(t) => t,
        }
    }
}

/// A producer's handle: submits tasks to an [`Engine`].
///
/// Clone one per producer thread. A handle is `Send` but not `Sync`: it owns a
/// lane (a deque only it pushes to, which workers steal from) and its own
/// counters, so submitting touches no shared cache line besides the admission
/// word. Dropping a handle hands whatever is still in its lane to the engine's
/// injector: nothing submitted is lost.
///
/// # Examples
///
/// ```
/// use taskq::{Engine, EngineConfig, Noop, Task};
/// let engine = Engine::start(EngineConfig { workers: 2, ..Default::default() }, Noop).unwrap();
/// let producers: Vec<_> = (0..4)
///     .map(|p| {
///         let submitter = engine.submitter();
///         std::thread::spawn(move || {
///             for i in 0..100 {
///                 let key = format!("img/{p}-{i}.jpg");
///                 submitter.submit(Task::new(&key, "200x200".parse().unwrap()).unwrap()).unwrap();
///             }
///         })
///     })
///     .collect();
/// for p in producers {
///     p.join().unwrap();
/// }
/// let report = engine.shutdown();
/// assert_eq!(report.counts.succeeded, 400);
/// ```
pub struct Submitter {
    shared: Arc<Shared>,
    stats: Arc<ProducerStats>,
    /// Always `Some` until dropped.
    lane: Option<Lane<Job>>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Slots [`Submitter::submit_iter`] reserves at once, at most.
const SUBMIT_CHUNK: usize = 256;

impl Submitter {
    fn new(shared: Arc<Shared>) -> Self {
        let stats = Arc::new(ProducerStats::default());
        lock(&shared.producers).push(stats.clone());
        let lane = Some(shared.scheduler.open_lane());
        Submitter {
            shared,
            stats,
            lane,
            _not_sync: PhantomData,
        }
    }

    #[inline]
    fn lane(&self) -> &Lane<Job> {
        self.lane.as_ref().expect("a live submitter has a lane")
    }

    /// Submits a task, honouring the admission mode: in block mode waits for
    /// room, in reject mode fails at once when full.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Full`] (reject mode only) or [`SubmitError::Closed`],
    /// with the task handed back.
    pub fn submit(&self, task: Task) -> Result<(), SubmitError> {
        match self.shared.mode {
            AdmissionMode::Block => self.admit(task, |a| a.acquire()),
            AdmissionMode::Reject => self.admit(task, Admission::try_acquire),
        }
    }

    /// Submits a task if there is room now; never blocks.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Full`] or [`SubmitError::Closed`], with the task handed back.
    pub fn try_submit(&self, task: Task) -> Result<(), SubmitError> {
        self.admit(task, Admission::try_acquire)
    }

    #[inline]
    fn admit(
        &self,
        task: Task,
        acquire: impl FnOnce(&Admission) -> Result<(), AdmitError>,
    ) -> Result<(), SubmitError> {
        let submitted_at = self.shared.clock.raw();
        bump(&self.stats.submitted, 1);
        match acquire(&self.shared.admission) {
            Ok(()) => {
                bump(&self.stats.admitted, 1);
                self.shared
                    .scheduler
                    .push_lane(self.lane(), Job { task, submitted_at });
                Ok(())
            }
            Err(e) => Err(self.refused(e, task)),
        }
    }

    fn refused(&self, e: AdmitError, task: Task) -> SubmitError {
        match e {
            AdmitError::Full => {
                bump(&self.stats.rejected_full, 1);
                SubmitError::Full(task)
            }
            AdmitError::Closed => {
                bump(&self.stats.rejected_closed, 1);
                SubmitError::Closed(task)
            }
        }
    }

    /// Submits every task `tasks` yields, reserving admission slots in chunks
    /// (one compare-and-swap and one wake-up per chunk instead of per task).
    /// Honours the admission mode like [`submit`](Self::submit). Tasks of one
    /// chunk share one submit timestamp.
    ///
    /// Returns how many were admitted once `tasks` is exhausted.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Full`] (reject mode) or [`SubmitError::Closed`] with the
    /// first task that was not admitted; the tasks after it are still in
    /// `tasks`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskq::{Engine, EngineConfig, Noop, Task};
    /// let engine = Engine::start(EngineConfig { workers: 2, capacity: 64, ..Default::default() }, Noop).unwrap();
    /// let task = Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap();
    /// let mut tasks = std::iter::repeat(task).take(10_000);
    /// assert_eq!(engine.submitter().submit_iter(&mut tasks), Ok(10_000));
    /// assert_eq!(engine.shutdown().counts.completed(), 10_000);
    /// ```
    pub fn submit_iter(&self, tasks: &mut impl Iterator<Item = Task>) -> Result<u64, SubmitError> {
        let admission = &self.shared.admission;
        let mut admitted = 0u64;
        while let Some(first) = tasks.next() {
            let submitted_at = self.shared.clock.raw();
            let reserved = match self.shared.mode {
                AdmissionMode::Block => admission.acquire_many(SUBMIT_CHUNK),
                AdmissionMode::Reject => admission.try_acquire_many(SUBMIT_CHUNK),
            };
            let reserved = match reserved {
                Ok(k) => k,
                Err(e) => {
                    bump(&self.stats.submitted, 1);
                    return Err(self.refused(e, first));
                }
            };
            let mut used = 0usize;
            let chunk = std::iter::once(first)
                .chain(tasks.by_ref().take(reserved - 1))
                .map(|task| {
                    used += 1;
                    Job { task, submitted_at }
                });
            self.shared.scheduler.push_lane_all(self.lane(), chunk);
            if used < reserved && admission.release(reserved - used).is_some() {
                self.shared.on_drained();
            }
            bump(&self.stats.submitted, used as u64);
            bump(&self.stats.admitted, used as u64);
            admitted += used as u64;
        }
        Ok(admitted)
    }
}

impl Clone for Submitter {
    fn clone(&self) -> Self {
        Submitter::new(self.shared.clone())
    }
}

impl Drop for Submitter {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            self.shared.scheduler.close_lane(lane);
        }
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

/// Reads live [`Progress`] of an engine from any thread.
#[derive(Clone)]
pub struct ProgressHandle(Arc<Shared>);

impl ProgressHandle {
    /// A live snapshot of progress.
    pub fn progress(&self) -> Progress {
        self.0.progress()
    }
}

/// A running engine: pinned workers over work-stealing deques behind a bounded
/// admission counter.
///
/// # Examples
///
/// ```
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
    config: EngineConfig,
    started: Instant,
}

impl Engine {
    /// Validates `config` and starts the workers.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad setting, [`Error::Io`] if a thread cannot be
    /// started.
    pub fn start(config: EngineConfig, processor: impl Processor) -> Result<Engine, Error> {
        config.validate()?;
        let (scheduler, locals) = Scheduler::new(config.workers);
        let release_batch = config
            .release_batch
            .unwrap_or_else(|| ReleaseBatch::threshold_for(config.capacity, config.workers));
        let shared = Arc::new(Shared {
            admission: Admission::new(config.capacity),
            scheduler,
            clock: quanta::Clock::new(),
            processor: Box::new(processor),
            mode: config.admission,
            completed: (0..config.workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            producers: Mutex::new(Vec::new()),
        });
        let cores = pin::plan(config.pin, config.workers);
        let mut workers = Vec::with_capacity(config.workers);
        for (index, (local, core)) in locals.into_iter().zip(cores).enumerate() {
            let ctx = WorkerCtx {
                index,
                recorder: Recorder::new(),
                release: ReleaseBatch::new(release_batch),
            };
            let s = shared.clone();
            let spawned = Builder::new()
                .name(format!("taskq-worker-{index}"))
                .spawn(move || worker::run(s, local, ctx, core));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    let engine = Engine {
                        shared,
                        workers,
                        config,
                        started: Instant::now(),
                    };
                    engine.shutdown();
                    return Err(Error::io("cannot start a worker thread", e));
                }
            }
        }
        Ok(Engine {
            shared,
            workers,
            config,
            started: Instant::now(),
        })
    }

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

    /// A handle that reads progress from another thread, also while
    /// [`shutdown`](Self::shutdown) drains.
    pub fn progress_handle(&self) -> ProgressHandle {
        ProgressHandle(self.shared.clone())
    }

    /// Stops admission without waiting: submissions fail with
    /// [`SubmitError::Closed`] from now on. [`shutdown`](Self::shutdown) still
    /// has to be called to drain and collect the report.
    pub fn close(&self) {
        if self.shared.admission.close().is_some() {
            self.shared.on_drained();
        }
    }

    /// Stops admission, lets every admitted task complete, joins the workers and
    /// returns the merged report.
    ///
    /// # Panics
    ///
    /// Only if a worker thread itself panicked outside a task (a bug).
    pub fn shutdown(self) -> Report {
        self.close();
        let mut exits = Vec::with_capacity(self.workers.len());
        for handle in self.workers {
            exits.push(
                handle
                    .join()
                    .expect("a worker thread panicked outside a task"),
            );
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        build_report(&self.shared, &self.config, exits, elapsed)
    }
}

fn build_report(
    shared: &Shared,
    config: &EngineConfig,
    exits: Vec<WorkerExit>,
    elapsed_s: f64,
) -> Report {
    let mut merged = Recorder::new();
    let mut workers = Vec::with_capacity(exits.len());
    for exit in &exits {
        let r = &exit.ctx.recorder;
        merged.merge(r);
        workers.push(WorkerReport {
            index: exit.ctx.index,
            core: exit.core,
            tasks: r.completed(),
            attempts: r.attempts,
            steals: r.steals,
            busy_ratio: if exit.wall_ns == 0 {
                0.0
            } else {
                r.busy_ns as f64 / exit.wall_ns as f64
            },
        });
    }
    let (mut submitted, mut admitted, mut full, mut closed) = (0, 0, 0, 0);
    for p in lock(&shared.producers).iter() {
        submitted += p.submitted.load(Relaxed);
        admitted += p.admitted.load(Relaxed);
        full += p.rejected_full.load(Relaxed);
        closed += p.rejected_closed.load(Relaxed);
    }
    let completed = merged.completed();
    let per_s = |n: u64| {
        if elapsed_s > 0.0 {
            n as f64 / elapsed_s
        } else {
            0.0
        }
    };
    Report {
        status: Default::default(),
        counts: Counts {
            submitted,
            admitted,
            rejected: full + closed,
            invalid: 0,
            started: merged.started,
            attempts: merged.attempts,
            succeeded: merged.succeeded,
            failed: merged.failed,
            duplicates: merged.duplicates,
            retried: merged.retried,
            dead_lettered: merged.dead_lettered,
        },
        rejections: Rejections { full, closed },
        failures: merged
            .failures
            .iter()
            .map(|((class, kind), count)| FailureCount {
                class: *class,
                kind: kind.to_string(),
                count: *count,
            })
            .collect(),
        retries: RetryStats {
            by_attempt: merged
                .retries_by_attempt
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            wait_s: merged.retry_wait_ns as f64 / 1e9,
        },
        latency_ms: Percentiles::from_histogram(&merged.latency),
        service_ms: Percentiles::from_histogram(&merged.service),
        throughput_per_s: per_s(completed),
        elapsed_s,
        queue_depth: QueueDepth {
            capacity: config.capacity,
            max: shared.admission.max_depth(),
            mean: if elapsed_s > 0.0 {
                merged.residence_ns as f64 / 1e9 / elapsed_s
            } else {
                0.0
            },
        },
        rates: Rates {
            enqueue_per_s: per_s(admitted),
            dequeue_per_s: per_s(completed),
        },
        workers,
        invalid_tasks: Vec::new(),
        errors: Vec::new(),
        config: serde_json::to_value(config).unwrap_or_default(),
    }
}
