//! [`Baseline`]: the seed's design, one lock around a list, processing
//! under the lock (the module docs of [`baseline`](super) say how it waits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use taskq::processor::Processor;
use taskq::task::Task;

use super::*;

/// Settings of the [`Baseline`].
#[derive(Clone, Debug)]
pub struct BaselineConfig {
    /// Worker threads.
    pub workers: usize,
    /// How long a worker sleeps after finding the list empty (the Python
    /// `time.sleep` in the worker loop).
    pub idle_poll: Duration,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            workers: 8,
            idle_poll: Duration::from_millis(1),
        }
    }
}

struct BaselineShared {
    /// The global lock and the list. `Box` per job: a Python list of references.
    #[allow(clippy::vec_box)]
    queue: Mutex<Vec<Box<Job>>>,
    /// Set once every producer has finished. Written by [`Baseline::finish`],
    /// read by workers before they look at an empty list.
    done: AtomicBool,
    processor: Arc<dyn Processor>,
    clock: quanta::Clock,
}

/// The seed design: a global lock around a list, processed under the lock.
///
/// # Examples
///
/// ```
/// use taskq_bench::baseline::{Baseline, BaselineConfig, Job, Observer};
/// use taskq::{Noop, Output, ProcessError, Task};
///
/// struct Count(u64);
/// impl Observer for Count {
///     fn completed(&mut self, _: Job, _: u64, r: Result<Output, ProcessError>) {
///         self.0 += u64::from(r.is_ok());
///     }
/// }
/// let clock = quanta::Clock::new();
/// let mut baseline = Baseline::new(BaselineConfig { workers: 2, ..Default::default() }, std::sync::Arc::new(Noop), clock);
/// baseline.start(|_| Count(0)).unwrap();
/// let producer = baseline.producer();
/// for i in 0..100 {
///     producer.submit(Task::new(&format!("img/{i}.jpg"), "200x200".parse().unwrap()).unwrap());
/// }
/// let counts = baseline.finish();
/// assert_eq!(counts.iter().map(|c| c.0).sum::<u64>(), 100);
/// ```
pub struct Baseline<O: Observer> {
    shared: Arc<BaselineShared>,
    config: BaselineConfig,
    db: Option<SeedDb>,
    workers: Vec<JoinHandle<O>>,
}

/// A producer's handle on a [`Baseline`]: appends under the global lock.
#[derive(Clone)]
pub struct BaselineProducer {
    shared: Arc<BaselineShared>,
}

impl BaselineProducer {
    /// `queue.append(task)` under the lock (waits while a worker processes).
    pub fn submit(&self, task: Task) {
        let submitted_at = self.shared.clock.raw();
        lock(&self.shared.queue).push(Box::new(Job { task, submitted_at }));
    }
}

impl<O: Observer> Baseline<O> {
    /// The list and its lock, with no workers yet.
    pub fn new(
        config: BaselineConfig,
        processor: Arc<dyn Processor>,
        clock: quanta::Clock,
    ) -> Self {
        Baseline {
            shared: Arc::new(BaselineShared {
                queue: Mutex::new(Vec::new()),
                done: AtomicBool::new(false),
                processor,
                clock,
            }),
            config,
            db: None,
            workers: Vec::new(),
        }
    }

    /// Deduplicates through `db`: each worker claims a task's key with one
    /// autocommit `INSERT OR IGNORE` (under the global lock, as the seed did)
    /// and processes it only when a row changed. Call before [`start`](Self::start).
    pub fn with_seed_db(mut self, db: SeedDb) -> Self {
        self.db = Some(db);
        self
    }

    /// A producer handle.
    pub fn producer(&self) -> BaselineProducer {
        BaselineProducer {
            shared: self.shared.clone(),
        }
    }

    /// Spawns `config.workers` workers; worker `i` reports to `observer(i)`.
    ///
    /// # Errors
    ///
    /// The OS error when a thread cannot be spawned, or when a worker's
    /// [`SeedDb`] connection cannot be opened.
    pub fn start(&mut self, mut observer: impl FnMut(usize) -> O) -> std::io::Result<()> {
        let conns = connect_all(self.db.as_ref(), self.config.workers)?;
        for (i, conn) in conns.into_iter().enumerate() {
            let shared = self.shared.clone();
            let poll = self.config.idle_poll;
            let obs = observer(i);
            let handle = std::thread::Builder::new()
                .name(format!("baseline-{i}"))
                .spawn(move || baseline_worker(&shared, poll, conn, obs))?;
            self.workers.push(handle);
        }
        Ok(())
    }

    /// Tells the workers the producers are done (call after every producer
    /// finished), waits for the list to empty, and returns the observers.
    ///
    /// # Panics
    ///
    /// If a worker thread panicked outside the processor, or if no worker was
    /// started while tasks are queued.
    pub fn finish(self) -> Vec<O> {
        self.shared.done.store(true, Ordering::Release);
        assert!(
            !self.workers.is_empty() || lock(&self.shared.queue).is_empty(),
            "Baseline::finish with queued tasks and no workers"
        );
        self.workers
            .into_iter()
            .map(|h| h.join().expect("a baseline worker panicked"))
            .collect()
    }
}

fn baseline_worker<O: Observer>(
    shared: &BaselineShared,
    poll: Duration,
    conn: Option<Connection>,
    mut obs: O,
) -> O {
    loop {
        // Acquire: pairs with `finish`'s store, which follows every append.
        let done = shared.done.load(Ordering::Acquire);
        let mut queue = lock(&shared.queue);
        if !queue.is_empty() {
            let job = queue.remove(0);
            // Claim, process and report, all under the lock.
            handle(
                &*shared.processor,
                &shared.clock,
                conn.as_ref(),
                None,
                *job,
                &mut obs,
            );
            drop(queue);
            continue;
        }
        drop(queue);
        if done {
            return obs;
        }
        std::thread::sleep(poll);
    }
}
