//! Starting an engine: [`EngineBuilder`], [`Engine::start`] and what it does
//! (validate the settings, open idempotency, build the shared state, spawn the
//! timer, writer and worker threads).
//!
//! Invariant: an engine is returned only with every thread running; if a
//! thread cannot be started, the threads already started are shut down first.

use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::admission::{Admission, ReleaseBatch};
use crate::config::EngineConfig;
use crate::error::Error;
use crate::idempotency::setup::{self, Idem};
use crate::idempotency::writer::WriterReport;
use crate::idempotency::{Store, StoreConfig, StoreWriter};
use crate::metrics::Recorder;
use crate::processor::Processor;
use crate::retry::DelayQueue;
use crate::scheduler::{pin, Scheduler};
use crate::sync::atomic::AtomicBool;
use crate::sync::thread::Builder;
use crate::sync::{Arc, Condvar, Mutex};

use super::{pool, worker, Engine, Job, Observer, Shared, WorkerCtx};

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
            tallies: (0..=config.workers).map(|_| StdArc::default()).collect(),
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
                .unwrap_or_else(|| StoreConfig::new("taskq.db"));
            let idem = s.idem.as_ref().expect("checked");
            let writer = idem.store.writer(&idem.processor).map_err(Error::Store)?;
            self.writer = Some(
                Builder::new()
                    .name("taskq-writer".into())
                    .spawn(move || {
                        let rec = Recorder::with(s.tallies[s.tallies.len() - 1].clone());
                        run_writer(&s, writer, &store_config, rec)
                    })
                    .map_err(spawn_err("writer"))?,
            );
        }
        let cores = pin::plan(self.config.pin, self.config.workers);
        for (index, (local, core)) in locals.into_iter().zip(cores).enumerate() {
            let ctx = WorkerCtx {
                index,
                recorder: Recorder::with(self.shared.tallies[index].clone()),
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
}

/// Opens the store (if configured), commits an earlier run's recovery file,
/// and seeds the Bloom filter from `processor`'s history.
fn open_idempotency(
    config: &EngineConfig,
    store: Option<StdArc<dyn Store>>,
    processor: &str,
) -> Result<Option<Idem>, Error> {
    let store_config = match (&config.store, &store) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => StoreConfig::new("(custom store)"),
        (None, None) => return Ok(None),
    };
    store_config.validate()?;
    if processor.is_empty() {
        return Err(Error::config(
            crate::setting::PROCESSOR,
            "the processor's name (Processor::name) must not be empty: its records carry it",
        ));
    }
    setup::open(&store_config, store, processor)
        .map(Some)
        .map_err(Error::Store)
}

/// The writer thread: commits the workers' records and, in group-commit mode,
/// completes their tasks.
fn run_writer(
    shared: &Shared,
    writer: Box<dyn StoreWriter>,
    config: &StoreConfig,
    mut rec: Recorder,
) -> (Recorder, WriterReport) {
    let idem = shared.idem.as_ref().expect("a writer has a store");
    let report = idem.run_writer(writer, config, |batch, result| {
        if let Err(e) = result {
            shared.storage_failed(e.to_string());
        }
        if idem.group_commit {
            shared.complete_batch(batch, result, &mut rec);
        }
    });
    (rec, report)
}
