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
//! 7. The recorders are merged into the [`Report`].

mod execute;
mod pool;
mod report;
mod submit;

use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::admission::{Admission, AdmissionMode, ReleaseBatch};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::idempotency::bloom::Bloom;
use crate::idempotency::claim::ClaimTable;
use crate::idempotency::handoff::Handoff;
use crate::idempotency::writer::{self, Pending, WriterReport, WriterSettings};
use crate::idempotency::{SqliteStore, Store, StoreReader};
use crate::metrics::{Recorder, Report};
use crate::processor::{ErrorClass, Output, ProcessError, Processor};
use crate::retry::{DelayQueue, RetryPolicy};
use crate::scheduler::worker::{self, WorkerExit};
use crate::scheduler::{pin, Scheduler};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use crate::sync::thread::{Builder, JoinHandle};
use crate::sync::{lock, wait_timeout, Arc, CachePadded, Condvar, Mutex};
use crate::task::Task;
use compact_str::CompactString;

use submit::ProducerStats;
pub use submit::Submitter;

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

/// Idempotency state shared by workers and the writer.
pub(crate) struct Idem {
    pub(crate) table: ClaimTable,
    pub(crate) bloom: Bloom,
    pub(crate) store: StdArc<dyn Store>,
    pub(crate) handoff: Handoff<Pending>,
    pub(crate) group_commit: bool,
    /// A worker hands its buffered records over at this many...
    pub(crate) flush_records: usize,
    /// ...or once the oldest has waited this long.
    pub(crate) flush_ns: u64,
    /// Succeeded keys in the history at start (this processor's).
    pub(crate) history_keys: u64,
    pub(crate) cache_capacity: usize,
    pub(crate) path: String,
    /// The processor whose records the engine reads and writes.
    pub(crate) processor: CompactString,
    /// Succeeded records of other processors at start (not done for this one).
    pub(crate) other_processors: Vec<crate::idempotency::ProcessorRecords>,
    /// Records of an earlier run's recovery file committed at start.
    pub(crate) replayed: u64,
}

/// State shared by the engine handle, submitters, workers, the writer and the timer.
pub(crate) struct Shared {
    pub(crate) admission: Admission,
    pub(crate) scheduler: Scheduler<Box<Job>>,
    /// Finished jobs' boxes, for producers to refill.
    pub(crate) pool: pool::JobPool,
    pub(crate) clock: quanta::Clock,
    processor: Box<dyn Processor>,
    pub(crate) mode: AdmissionMode,
    pub(crate) idem: Option<Idem>,
    retry: RetryPolicy,
    delay: DelayQueue<Box<Job>>,
    task_timeout: Option<Duration>,
    panic_class: ErrorClass,
    observer: Option<Box<dyn Observer>>,
    /// Set when shutdown timed out: tasks not yet run are dead-lettered.
    /// Written once by `shutdown`, read by workers.
    expiring: AtomicBool,
    /// Set when the writer failed: admission is closed and tasks not yet run
    /// are failed unrecorded. Written once by the writer, read by workers.
    storage_down: AtomicBool,
    /// Completed tasks per worker, for live progress. Each slot is written only by
    /// its worker (a plain store), read by [`Engine::progress`].
    completed: Box<[CachePadded<AtomicU64>]>,
    /// Tasks completed by the writer (group commit), for live progress.
    writer_completed: AtomicU64,
    /// One counter block per submitter handle ever made.
    pub(crate) producers: Mutex<Vec<Arc<ProducerStats>>>,
    /// Set once drained, for `shutdown`'s timed wait.
    drained: Mutex<bool>,
    drained_cv: Condvar,
    /// The first storage error (it stops admission).
    storage_error: Mutex<Option<String>>,
}

impl Shared {
    /// Ends a task's stay in the engine on a worker: one latency sample, one
    /// slot released.
    #[inline]
    pub(crate) fn complete(&self, submitted_at: u64, now: u64, ctx: &mut WorkerCtx) {
        ctx.recorder
            .complete(self.clock.delta_as_nanos(submitted_at, now));
        self.completed[ctx.index].store(ctx.recorder.completed(), Relaxed);
        if ctx.release.add(&self.admission).is_some() {
            self.on_drained();
        }
    }

    #[inline]
    fn observe(&self, task: &Task, outcome: Outcome<'_>) {
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

    fn progress(&self) -> Progress {
        Progress {
            completed: self.completed.iter().map(|c| c.load(Relaxed)).sum::<u64>()
                + self.writer_completed.load(Relaxed),
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
    fn close(&self) {
        if self.admission.close().is_some() {
            self.on_drained();
        }
    }

    fn storage_failed(&self, error: String) {
        self.storage_down.store(true, Relaxed);
        let mut slot = lock(&self.storage_error);
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.close();
    }

    /// Waits until drained or `timeout` passed; true if drained.
    fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut drained = lock(&self.drained);
        while !*drained {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            drained = wait_timeout(&self.drained_cv, drained, deadline - now);
        }
        true
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

    /// Stops admission from any thread (for example a signal handler's thread):
    /// submissions fail with [`SubmitError::Closed`] from now on.
    pub fn close(&self) {
        self.0.close();
    }
}

/// Why a submission was refused. Either way the task is handed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The engine holds `capacity` tasks (reject mode, or [`Submitter::try_submit`]).
    #[error("engine is at capacity")]
    Full(Task),
    /// The engine stopped admitting (shutdown began, or storage failed).
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

/// Builds an [`Engine`] with optional parts: an observer, a custom store.
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return Ok(()); }
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use taskq::{Engine, EngineConfig, Noop, Outcome, Task};
///
/// let done = Arc::new(AtomicU64::new(0));
/// let seen = done.clone();
/// let engine = Engine::builder(EngineConfig::default())
///     .observer(move |_: &Task, outcome: Outcome<'_>| {
///         if let Outcome::Succeeded { .. } = outcome {
///             seen.fetch_add(1, Ordering::Relaxed);
///         }
///     })
///     .start(Noop)?;
/// engine.submitter().submit(Task::new("img/a.jpg", "200x200".parse()?)?)?;
/// engine.shutdown();
/// assert_eq!(done.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EngineBuilder {
    config: EngineConfig,
    observer: Option<Box<dyn Observer>>,
    store: Option<StdArc<dyn Store>>,
}

impl EngineBuilder {
    /// Tells `observer` about every completed task.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Uses `store` for idempotency history instead of opening the SQLite file
    /// of `config.store` (whose batch and cache settings still apply, or the
    /// defaults when it is `None`).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(StdArc::new(store));
        self
    }

    /// Validates the settings, opens the store and starts the threads.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad setting, [`Error::Store`] when the store
    /// cannot be opened or read, [`Error::Io`] if a thread cannot be started.
    pub fn start(self, processor: impl Processor) -> Result<Engine, Error> {
        Engine::launch(self, Box::new(processor))
    }
}

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
    /// Validates `config` and starts the engine with `processor`.
    ///
    /// # Errors
    ///
    /// As [`EngineBuilder::start`].
    pub fn start(config: EngineConfig, processor: impl Processor) -> Result<Engine, Error> {
        Engine::builder(config).start(processor)
    }

    /// A builder, for an observer or a custom store.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            config,
            observer: None,
            store: None,
        }
    }

    fn launch(builder: EngineBuilder, processor: Box<dyn Processor>) -> Result<Engine, Error> {
        let EngineBuilder {
            config,
            observer,
            store,
        } = builder;
        config.validate()?;
        let idem = open_idempotency(&config, store, processor.name())?;
        let (scheduler, locals) = Scheduler::new(config.workers);
        let release_batch = config
            .release_batch
            .unwrap_or_else(|| ReleaseBatch::threshold_for(config.capacity, config.workers));
        let shared = Arc::new(Shared {
            admission: Admission::new(config.capacity),
            scheduler,
            pool: pool::JobPool::new(config.capacity.min(1 << 16)),
            clock: quanta::Clock::new(),
            processor,
            mode: config.admission,
            idem,
            retry: config.retry.clone(),
            delay: DelayQueue::new(),
            task_timeout: config.task_timeout_ms.map(Duration::from_millis),
            panic_class: config.panic_class,
            observer,
            expiring: AtomicBool::new(false),
            storage_down: AtomicBool::new(false),
            completed: (0..config.workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            writer_completed: AtomicU64::new(0),
            producers: Mutex::new(Vec::new()),
            drained: Mutex::new(false),
            drained_cv: Condvar::new(),
            storage_error: Mutex::new(None),
        });
        let mut engine = Engine {
            shared: shared.clone(),
            workers: Vec::with_capacity(config.workers),
            writer: None,
            timer: None,
            config,
            started: Instant::now(),
        };
        if let Err(e) = engine.spawn_threads(locals, release_batch) {
            engine.shutdown();
            return Err(e);
        }
        Ok(engine)
    }

    fn spawn_threads(
        &mut self,
        locals: Vec<crate::sync::deque::Worker<Box<Job>>>,
        release_batch: usize,
    ) -> Result<(), Error> {
        let spawn_err = |what: &str| {
            let what = what.to_string();
            move |e| Error::io(format!("cannot start the {what} thread"), e)
        };
        let s = self.shared.clone();
        self.timer = Some(
            Builder::new()
                .name("taskq-retry-timer".into())
                .spawn(move || {
                    s.delay.run(|mut job, expired| {
                        job.retry_mut().expired = expired;
                        s.scheduler.push(job);
                    })
                })
                .map_err(spawn_err("retry timer"))?,
        );
        if self.shared.idem.is_some() {
            let s = self.shared.clone();
            let store_config = self
                .config
                .store
                .clone()
                .unwrap_or_else(|| crate::idempotency::StoreConfig::new("taskq.db"));
            let idem = s.idem.as_ref().expect("checked");
            let writer = idem.store.writer(&idem.processor).map_err(Error::Store)?;
            self.writer = Some(
                Builder::new()
                    .name("taskq-writer".into())
                    .spawn(move || run_writer(&s, writer, &store_config))
                    .map_err(spawn_err("writer"))?,
            );
        }
        let cores = pin::plan(self.config.pin, self.config.workers);
        for (index, (local, core)) in locals.into_iter().zip(cores).enumerate() {
            let ctx = WorkerCtx {
                index,
                recorder: Recorder::new(),
                release: ReleaseBatch::new(release_batch),
                reader: None,
                pending: Vec::new(),
                pending_since: 0,
                spare: pool::Spare::new(),
            };
            let s = self.shared.clone();
            self.workers.push(
                Builder::new()
                    .name(format!("taskq-worker-{index}"))
                    .spawn(move || worker::run(s, local, ctx, core))
                    .map_err(spawn_err("worker"))?,
            );
        }
        Ok(())
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

    /// When the engine started: the report's `elapsed_s` runs from here to
    /// the moment every task had completed, every record was committed and
    /// every engine thread was joined (before the report was built).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// A handle that reads progress (and can stop admission) from another
    /// thread, also while [`shutdown`](Self::shutdown) drains.
    pub fn progress_handle(&self) -> ProgressHandle {
        ProgressHandle(self.shared.clone())
    }

    /// Stops admission without waiting: submissions fail with
    /// [`SubmitError::Closed`] from now on. [`shutdown`](Self::shutdown) still
    /// has to be called to drain and collect the report.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Stops admission, lets every admitted task complete (retries included),
    /// commits every record, joins the threads and returns the merged report.
    /// With `shutdown_timeout_ms` set, tasks still waiting when it runs out are
    /// dead-lettered with kind `shutdown` instead of being run.
    ///
    /// # Panics
    ///
    /// Only if an engine thread itself panicked outside a task (a bug).
    pub fn shutdown(mut self) -> Report {
        self.shared.close();
        if let Some(ms) = self.config.shutdown_timeout_ms {
            if !self.shared.wait_drained(Duration::from_millis(ms)) {
                self.shared.expiring.store(true, Relaxed);
                self.shared.delay.expire();
                self.shared.scheduler.sleep.notify_all();
            }
        }
        let mut exits = Vec::with_capacity(self.workers.len());
        for handle in self.workers.drain(..) {
            exits.push(
                handle
                    .join()
                    .expect("a worker thread panicked outside a task"),
            );
        }
        let writer = self.writer.take().map(|handle| {
            let idem = self.shared.idem.as_ref().expect("a writer has a store");
            idem.handoff.close();
            handle.join().expect("the writer thread panicked")
        });
        self.shared.delay.close();
        if let Some(timer) = self.timer.take() {
            timer.join().expect("the retry timer thread panicked");
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        report::build(&self.shared, &self.config, exits, writer, elapsed)
    }
}

/// New keys a run's Bloom filter has room for beyond the history, at about
/// 1% false positives: 12M keys at 10 bits each, rounded up to 16 MiB.
const NEW_KEYS_PER_RUN: u64 = 12_000_000;

/// Opens the store (if configured), commits an earlier run's recovery file,
/// and seeds the Bloom filter from `processor`'s history.
fn open_idempotency(
    config: &EngineConfig,
    store: Option<StdArc<dyn Store>>,
    processor: &str,
) -> Result<Option<Idem>, Error> {
    let store_config = match (&config.store, &store) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => crate::idempotency::StoreConfig::new("(custom store)"),
        (None, None) => return Ok(None),
    };
    store_config.validate()?;
    if processor.is_empty() {
        return Err(Error::config(
            "processor",
            "the processor's name (Processor::name) must not be empty: its records carry it",
        ));
    }
    let store: StdArc<dyn Store> = match store {
        Some(s) => s,
        None => StdArc::new(
            SqliteStore::open(&store_config.path, store_config.sqlite_options())
                .map_err(Error::Store)?,
        ),
    };
    let replayed = crate::idempotency::recovery::replay(&*store).map_err(Error::Store)?;
    // Count first, then size the filter for the history plus the keys this run
    // may add. Its size is fixed for the run, so memory does not grow with the
    // input; past NEW_KEYS_PER_RUN new keys its false-positive rate rises and
    // more new keys cost a SQLite lookup (never a wrong answer).
    let history_keys = store
        .for_each_succeeded_key(processor, &mut |_| {})
        .map_err(Error::Store)?;
    let bloom = Bloom::with_capacity(history_keys.saturating_add(NEW_KEYS_PER_RUN));
    store
        .for_each_succeeded_key(processor, &mut |k| bloom.insert(k))
        .map_err(Error::Store)?;
    let other_processors = store.other_processors(processor).map_err(Error::Store)?;
    let batch = store_config.batch_size;
    // The queue holds one batch while the writer commits the previous one: the
    // writer always has the next batch ready, and a crash in batch mode loses at
    // most two batches plus the workers' small buffers.
    let handoff = Handoff::new(batch.max(64), batch);
    Ok(Some(Idem {
        table: ClaimTable::new(),
        bloom,
        store,
        handoff,
        group_commit: store_config.durability == crate::idempotency::Durability::GroupCommit,
        flush_records: batch.min(64),
        flush_ns: store_config.batch_ms * 1_000_000 / 2,
        history_keys,
        cache_capacity: store_config.cache_capacity,
        path: store_config.path.display().to_string(),
        processor: processor.into(),
        other_processors,
        replayed,
    }))
}

fn run_writer(
    shared: &Shared,
    writer: Box<dyn crate::idempotency::StoreWriter>,
    config: &crate::idempotency::StoreConfig,
) -> (Recorder, WriterReport) {
    let idem = shared.idem.as_ref().expect("a writer has a store");
    let mut rec = Recorder::new();
    let settings = WriterSettings::new(
        Duration::from_millis(config.batch_ms),
        config.cache_capacity,
        idem.store.recovery_path(),
        &idem.processor,
    );
    let report = writer::run(
        writer,
        &idem.handoff,
        &idem.table,
        &idem.bloom,
        settings,
        |batch, result| {
            if let Err(e) = result {
                shared.storage_failed(e.to_string());
            }
            if idem.group_commit {
                shared.complete_batch(batch, result, &mut rec);
                shared.writer_completed.store(rec.completed(), Relaxed);
            }
        },
    );
    (rec, report)
}
