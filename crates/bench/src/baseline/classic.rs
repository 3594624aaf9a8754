//! [`Classic`]: a bounded queue feeding a fixed pool that processes outside
//! the lock, with per-task SQLite writes and sleeping retries.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use taskq::processor::Processor;
use taskq::retry::RetryPolicy;
use taskq::task::Task;

use super::*;

/// Settings of the [`Classic`] design.
#[derive(Clone, Debug)]
pub struct ClassicConfig {
    /// Pool threads.
    pub workers: usize,
    /// `maxsize` of the queue: producers block while it holds this many.
    pub capacity: usize,
    /// Retry transient failures, sleeping the policy's delay in the worker
    /// (`None`: a failed task ends failed).
    pub retry: Option<RetryPolicy>,
}

enum Item {
    Job(Job),
    /// The `None` a Python pool worker stops at.
    Stop,
}

/// `queue.Queue(maxsize)`: a deque under one mutex, with `not_empty` and
/// `not_full` conditions.
struct BoundedQueue {
    items: Mutex<VecDeque<Item>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl BoundedQueue {
    fn put(&self, item: Item) {
        let mut q = lock(&self.items);
        while q.len() >= self.capacity {
            q = self.not_full.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.push_back(item);
        drop(q);
        self.not_empty.notify_one();
    }

    fn get(&self) -> Item {
        let mut q = lock(&self.items);
        loop {
            if let Some(item) = q.pop_front() {
                drop(q);
                self.not_full.notify_one();
                return item;
            }
            q = self.not_empty.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct ClassicShared {
    queue: BoundedQueue,
    processor: Arc<dyn Processor>,
    clock: quanta::Clock,
    retry: Option<RetryPolicy>,
}

/// The thread-pool design: a bounded blocking queue and a fixed pool that
/// processes outside the lock.
///
/// # Examples
///
/// ```
/// use taskq_bench::baseline::{Classic, ClassicConfig, Job, Observer};
/// use taskq::{Noop, Output, ProcessError, Task};
///
/// struct Count(u64);
/// impl Observer for Count {
///     fn completed(&mut self, _: Job, _: u64, r: Result<Output, ProcessError>) {
///         self.0 += u64::from(r.is_ok());
///     }
/// }
/// let clock = quanta::Clock::new();
/// let mut pool = Classic::new(ClassicConfig { workers: 2, capacity: 8, retry: None }, std::sync::Arc::new(Noop), clock);
/// pool.start(|_| Count(0)).unwrap();
/// let producer = pool.producer();
/// for i in 0..100 {
///     producer.submit(Task::new(&format!("img/{i}.jpg"), "200x200".parse().unwrap()).unwrap());
/// }
/// assert_eq!(pool.finish().iter().map(|c| c.0).sum::<u64>(), 100);
/// ```
pub struct Classic<O: Observer> {
    shared: Arc<ClassicShared>,
    config: ClassicConfig,
    db: Option<SeedDb>,
    workers: Vec<JoinHandle<O>>,
}

/// A producer's handle on a [`Classic`] pool: `queue.put(task)`.
#[derive(Clone)]
pub struct ClassicProducer {
    shared: Arc<ClassicShared>,
}

impl ClassicProducer {
    /// Puts a task on the queue, blocking while it is full.
    pub fn submit(&self, task: Task) {
        let submitted_at = self.shared.clock.raw();
        self.shared.queue.put(Item::Job(Job { task, submitted_at }));
    }
}

impl<O: Observer> Classic<O> {
    /// The queue, with no workers yet.
    ///
    /// # Panics
    ///
    /// If `config.capacity` is 0.
    pub fn new(config: ClassicConfig, processor: Arc<dyn Processor>, clock: quanta::Clock) -> Self {
        assert!(config.capacity >= 1, "queue capacity must be at least 1");
        Classic {
            shared: Arc::new(ClassicShared {
                queue: BoundedQueue {
                    items: Mutex::new(VecDeque::new()),
                    not_empty: Condvar::new(),
                    not_full: Condvar::new(),
                    capacity: config.capacity,
                },
                processor,
                clock,
                retry: config.retry.clone(),
            }),
            config,
            db: None,
            workers: Vec::new(),
        }
    }

    /// Deduplicates through `db`: each pool worker claims a task's key with one
    /// autocommit `INSERT OR IGNORE` on its own connection (outside the queue's
    /// lock) and processes it only when a row changed. Call before
    /// [`start`](Self::start).
    pub fn with_seed_db(mut self, db: SeedDb) -> Self {
        self.db = Some(db);
        self
    }

    /// A producer handle.
    pub fn producer(&self) -> ClassicProducer {
        ClassicProducer {
            shared: self.shared.clone(),
        }
    }

    /// Spawns the pool; worker `i` reports to `observer(i)`.
    ///
    /// # Errors
    ///
    /// The OS error when a thread cannot be spawned, or when a worker's
    /// [`SeedDb`] connection cannot be opened.
    pub fn start(&mut self, mut observer: impl FnMut(usize) -> O) -> std::io::Result<()> {
        let conns = connect_all(self.db.as_ref(), self.config.workers)?;
        for (i, conn) in conns.into_iter().enumerate() {
            let shared = self.shared.clone();
            let obs = observer(i);
            let handle = std::thread::Builder::new()
                .name(format!("classic-{i}"))
                .spawn(move || classic_worker(&shared, conn, obs))?;
            self.workers.push(handle);
        }
        Ok(())
    }

    /// Puts one sentinel per worker (after every producer finished), joins the
    /// pool and returns the observers.
    ///
    /// # Panics
    ///
    /// If a worker thread panicked outside the processor, or if no worker was
    /// started.
    pub fn finish(self) -> Vec<O> {
        assert!(!self.workers.is_empty(), "Classic::finish with no workers");
        for _ in 0..self.workers.len() {
            self.shared.queue.put(Item::Stop);
        }
        self.workers
            .into_iter()
            .map(|h| h.join().expect("a classic worker panicked"))
            .collect()
    }
}

fn classic_worker<O: Observer>(shared: &ClassicShared, conn: Option<Connection>, mut obs: O) -> O {
    while let Item::Job(job) = shared.queue.get() {
        handle(
            &*shared.processor,
            &shared.clock,
            conn.as_ref(),
            shared.retry.as_ref(),
            job,
            &mut obs,
        );
    }
    obs
}
