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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection};

use taskq::processor::{Attempt, ErrorClass, Output, ProcessError, Processor};
use taskq::retry::RetryPolicy;
use taskq::task::Task;

mod classic;
mod seed;

pub use classic::{Classic, ClassicConfig, ClassicProducer};
pub use seed::{Baseline, BaselineConfig, BaselineProducer};

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
/// use taskq_bench::baseline::SeedDb;
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
            task.idempotency_key(),
            task.id(),
            task.image_key(),
            task.size().to_string(),
            task.created_at() as i64,
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
pub(crate) fn handle<O: Observer>(
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
                let delay = policy.delay(job.task.idempotency_key(), attempt.number);
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
pub(crate) fn connect_all(
    db: Option<&SeedDb>,
    workers: usize,
) -> std::io::Result<Vec<Option<Connection>>> {
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
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use taskq::processor::Noop;

    /// The ids of the tasks one worker completed.
    pub(crate) struct Ids(pub(crate) Vec<String>);
    impl Observer for Ids {
        fn completed(&mut self, job: Job, _: u64, _: Result<Output, ProcessError>) {
            self.0.push(job.task.id().to_string());
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
