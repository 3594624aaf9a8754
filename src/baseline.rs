//! The Python designs taskq replaces, ported faithfully, for the benchmark harness.
//!
//! Two designs, both running the same [`Processor`] trait objects as taskq:
//!
//! - [`Baseline`]: the seed. One global lock around a list used as the queue.
//!   Producers append under the lock; each worker takes the *first* element
//!   (`list.pop(0)`, here `Vec::remove(0)`, O(n) per take) and processes it
//!   *while still holding the lock*. No bound, no idempotency, no retries, no
//!   metrics. The list holds boxed jobs, as a Python list holds references, so a
//!   take moves `n` pointers (8 bytes each), not `n` tasks.
//! - [`Classic`]: the usual fix. A bounded queue (`queue.Queue(maxsize)`: a
//!   mutex, a deque and two condition variables, `not_empty` and `not_full`)
//!   feeding a fixed pool of worker threads (the `ThreadPoolExecutor` shape),
//!   which process *outside* the lock. Shutdown puts one sentinel (`None`) per
//!   worker on the queue, as the Python idiom does. Its per-task SQLite
//!   `INSERT OR IGNORE` (autocommit) arrives with the `dedup` workload. Given a
//!   [`RetryPolicy`] ([`ClassicConfig::retry`]), a worker retries a transient
//!   failure the way a function wrapped in a Python retry decorator does:
//!   it sleeps the backoff delay itself, then tries again, holding its pool
//!   thread all along.
//!
//! # How the Python threads waited, and what the port does
//!
//! (The Python source is not in this repository; the port follows the
//! description of it in the benchmark issue.) A seed worker is a loop: take the lock; if the list is non-empty, pop the
//! first task and process it (lock held), release, loop again at once; if it is
//! empty, release the lock and `time.sleep(…)` before looking again; leave once
//! the producers are done and the list is empty. The port does exactly that,
//! with [`BaselineConfig::idle_poll`] as the sleep. Its default, 1 ms, is about
//! the shortest sleep CPython honours, and the most favourable choice for the
//! baseline: a longer poll only adds latency on an idle queue, never throughput.
//! The done flag is read *before* the queue is checked, so a worker that sees
//! "done" and then an empty list knows no append can still come.
//!
//! Threads are not pinned (Python cannot pin), and a panic in the processor is
//! caught and counted as a failure (a Python worker's `try/except` around
//! `process`), so one bad task cannot wedge the comparison.
//!
//! # Measuring from outside
//!
//! Neither design measures anything. The harness stores a submit timestamp
//! beside each task (a raw [`quanta::Clock`] reading, what taskq itself takes
//! per task) and hands every completion to an [`Observer`] owned by the worker
//! thread, so timing adds no shared state to the design being timed.
//!
//! # Starting workers late
//!
//! Both types are built without workers ([`Baseline::new`]); producers may
//! append before [`start`](Baseline::start) spawns them. The harness uses this
//! to queue a whole batch first (`taskq bench --queue-first`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::processor::{Attempt, ErrorClass, Output, ProcessError, Processor};
use crate::retry::RetryPolicy;
use crate::task::Task;

/// A task with the clock reading taken when it was submitted.
#[derive(Clone, Debug)]
pub struct Job {
    /// The task.
    pub task: Task,
    /// Raw [`quanta::Clock`] reading at submission.
    pub submitted_at: u64,
}

/// Receives every completion of one worker thread.
///
/// One observer per worker, moved into its thread: it needs no locking. It is
/// called right after the processor returns (for [`Baseline`], still under
/// the queue lock, where the Python worker appended its result).
pub trait Observer: Send + 'static {
    /// `job` completed at raw clock reading `finished_at` with `result` (a
    /// caught panic arrives as a permanent `panic` error).
    fn completed(&mut self, job: Job, finished_at: u64, result: Result<Output, ProcessError>);

    /// `job` completed at raw clock reading `finished_at` without being
    /// processed: its `INSERT OR IGNORE` changed no row, so its key was already
    /// claimed (only with a [`SeedDb`]). The default reports it to
    /// [`completed`](Self::completed) as a success with no output, which is all
    /// the Python worker knew of it.
    fn duplicate(&mut self, job: Job, finished_at: u64) {
        self.completed(job, finished_at, Ok(Output::default()));
    }

    /// Attempt `attempt` of `job` failed transiently; the worker now sleeps
    /// `delay` before the next one (only [`Classic`] with a retry policy).
    fn retrying(&mut self, job: &Job, attempt: u32, delay: Duration) {
        let _ = (job, attempt, delay);
    }
}

/// The seed's idempotency table: a rowid table keyed by a `TEXT PRIMARY KEY`
/// (an automatic unique index beside the table).
pub const SEED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tasks (
    idempotency_key TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    image_key TEXT NOT NULL,
    size TEXT NOT NULL,
    created_at INTEGER NOT NULL
)";

/// The seed's per-task claim: one autocommit `INSERT OR IGNORE` per task.
const SEED_INSERT: &str =
    "INSERT OR IGNORE INTO tasks (idempotency_key, id, image_key, size, created_at)
    VALUES (?1, ?2, ?3, ?4, ?5)";

/// The SQLite file the Python designs deduplicated through (see the module
/// docs): rollback journal, `synchronous=FULL`, [`SEED_SCHEMA`].
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("seeddb-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// use taskq::baseline::SeedDb;
/// use taskq::Task;
///
/// let db = SeedDb::create(dir.join("seed.db")).unwrap();
/// let conn = db.connect().unwrap();
/// let task = Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap();
/// assert!(SeedDb::insert_or_ignore(&conn, &task).unwrap(), "a new key changes a row");
/// assert!(!SeedDb::insert_or_ignore(&conn, &task).unwrap(), "a repeat does not");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SeedDb {
    path: PathBuf,
}

impl SeedDb {
    /// Python's `sqlite3.connect` timeout: how long a statement waits for
    /// another connection's lock.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Creates (or opens) the database at `path` with [`SEED_SCHEMA`], in
    /// rollback-journal mode.
    ///
    /// # Errors
    ///
    /// SQLite's error when the file cannot be created or written.
    pub fn create(path: impl Into<PathBuf>) -> rusqlite::Result<Self> {
        let db = SeedDb { path: path.into() };
        let conn = db.connect()?;
        conn.execute_batch(SEED_SCHEMA)?;
        Ok(db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A worker's connection: busy timeout 5 s, `journal_mode=DELETE`,
    /// `synchronous=FULL` (SQLite's defaults, set explicitly so that a build
    /// with other compile-time defaults still runs the seed's settings).
    ///
    /// # Errors
    ///
    /// SQLite's error when the file cannot be opened.
    pub fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Self::BUSY_TIMEOUT)?;
        let _: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(conn)
    }

    /// Claims `task`'s key: one autocommit `INSERT OR IGNORE`. True when it
    /// changed a row (the key was new: process the task).
    ///
    /// # Errors
    ///
    /// SQLite's error (for example `database is locked` after the busy timeout).
    pub fn insert_or_ignore(conn: &Connection, task: &Task) -> rusqlite::Result<bool> {
        let mut insert = conn.prepare_cached(SEED_INSERT)?;
        let changed = insert.execute(params![
            task.idempotency_key.as_str(),
            task.id.as_str(),
            task.image_key.as_str(),
            task.size.to_string(),
            task.created_at as i64,
        ])?;
        Ok(changed == 1)
    }
}

/// Times a worker tries a claim that failed with `database is locked` (each
/// try waits up to [`SeedDb::BUSY_TIMEOUT`]) before it gives the task up as
/// failed: a minute, so only a lock held by someone else for good fails a task.
const LOCKED_TRIES: u32 = 12;

fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// What a worker does with one task: claim its key in the [`SeedDb`] (when
/// there is one, trying again while the file is locked), process it if the
/// claim changed a row (with `retry`, sleeping and trying again after each
/// transient failure the policy allows), report it.
fn handle<O: Observer>(
    processor: &dyn Processor,
    clock: &quanta::Clock,
    conn: Option<&Connection>,
    retry: Option<&RetryPolicy>,
    job: Job,
    obs: &mut O,
) {
    if let Some(conn) = conn {
        let mut tries = 1;
        let claimed = loop {
            match SeedDb::insert_or_ignore(conn, &job.task) {
                Err(e) if is_locked(&e) && tries < LOCKED_TRIES => tries += 1,
                other => break other,
            }
        };
        match claimed {
            Ok(true) => {}
            Ok(false) => return obs.duplicate(job, clock.raw()),
            Err(e) => {
                let e = ProcessError::transient("store", format!("INSERT OR IGNORE failed: {e}"));
                return obs.completed(job, clock.raw(), Err(e));
            }
        }
    }
    let mut attempt = Attempt::first();
    let result = loop {
        let result = run_one(processor, &job.task, &attempt);
        match (&result, retry) {
            (Err(e), Some(policy))
                if e.class == ErrorClass::Transient && policy.allows_retry(attempt.number) =>
            {
                let delay = policy.delay(&job.task.idempotency_key, attempt.number);
                obs.retrying(&job, attempt.number, delay);
                std::thread::sleep(delay);
                attempt.number += 1;
            }
            _ => break result,
        }
    };
    obs.completed(job, clock.raw(), result);
}

/// One [`SeedDb`] connection per worker, opened on the spawning thread so an
/// error is returned by `start`.
fn connect_all(db: Option<&SeedDb>, workers: usize) -> std::io::Result<Vec<Option<Connection>>> {
    (0..workers)
        .map(|_| {
            db.map(|db| {
                db.connect().map_err(|e| {
                    std::io::Error::other(format!("cannot open {}: {e}", db.path.display()))
                })
            })
            .transpose()
        })
        .collect()
}

fn run_one(
    processor: &dyn Processor,
    task: &Task,
    attempt: &Attempt,
) -> Result<Output, ProcessError> {
    catch_unwind(AssertUnwindSafe(|| processor.process(task, attempt)))
        .unwrap_or_else(|_| Err(ProcessError::permanent("panic", "the processor panicked")))
}

/// Locks with `std`'s mutex even under the `loom` feature (these designs are
/// measured, not model-checked), treating poisoning as recoverable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
/// use taskq::baseline::{Baseline, BaselineConfig, Job, Observer};
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
/// use taskq::baseline::{Classic, ClassicConfig, Job, Observer};
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::processor::Noop;

    struct Ids(Vec<String>);
    impl Observer for Ids {
        fn completed(&mut self, job: Job, _: u64, _: Result<Output, ProcessError>) {
            self.0.push(job.task.id.to_string());
        }
    }

    fn task(i: usize) -> Task {
        Task::new("img/a.jpg", "1x1".parse().unwrap())
            .unwrap()
            .with_id(i.to_string())
    }

    #[test]
    fn baseline_queue_first_then_workers() {
        let mut b = Baseline::new(
            BaselineConfig {
                workers: 3,
                idle_poll: Duration::from_micros(100),
            },
            Arc::new(Noop),
            quanta::Clock::new(),
        );
        let p = b.producer();
        (0..50).for_each(|i| p.submit(task(i)));
        b.start(|_| Ids(Vec::new())).unwrap();
        let mut ids: Vec<usize> = b
            .finish()
            .into_iter()
            .flat_map(|o| o.0)
            .map(|s| s.parse().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn classic_capacity_one() {
        let mut c = Classic::new(
            ClassicConfig {
                workers: 2,
                capacity: 1,
                retry: None,
            },
            Arc::new(Noop),
            quanta::Clock::new(),
        );
        c.start(|_| Ids(Vec::new())).unwrap();
        let p = c.producer();
        (0..200).for_each(|i| p.submit(task(i)));
        let n: usize = c.finish().iter().map(|o| o.0.len()).sum();
        assert_eq!(n, 200);
    }
}
