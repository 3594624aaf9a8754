//! A worker node: claims tasks from the queue and runs them on the local
//! engine, writes their outcomes back in batches, beats, and rescues.
//!
//! # Threads and connections
//!
//! - the claimer (the caller's thread): claims up to the free capacity
//!   (`capacity − tasks held`) in one statement, submits the tasks to the
//!   engine, then waits for a notification or the poll interval;
//! - the listener: `LISTEN taskq_available` on its own connection, waking
//!   the claimer (one notification per enqueued batch);
//! - the completer: the engine's observer sends each outcome to it; it
//!   writes them back in batches (by size or time), fenced on node and
//!   attempt ([`node::settle`]);
//! - the keeper: the heartbeat every `heartbeat` interval and a rescue round
//!   every two. A node whose heartbeat is refused (it was declared dead)
//!   stops claiming at once.
//!
//! The engine runs with no local store and no local retries: the database
//! is the record and schedules retries (`now() + backoff`), so any node may
//! take a retry, and a node that dies during a backoff loses nothing.
//!
//! # Stopping
//!
//! When `stop` is set (SIGTERM), the claimer stops claiming and shuts the
//! engine down with no grace: tasks already running finish and are written
//! back; tasks claimed and not started come back from the engine as
//! `shutdown` and are handed back to the queue at once (their claim not
//! counted as an attempt). With `exit_when_empty`, the node stops once the
//! queue holds no available or running task of its processor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use serde::Serialize;
use taskq::engine::Outcome;
use taskq::{Engine, EngineConfig, ErrorClass, Processor, Report, RetryPolicy, Task};

use crate::node::{self, Rescued, Settle, Settled};
use crate::{schema, PgError, Queue, CHANNEL};

/// How a node runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The local engine: workers, capacity (the most tasks the node holds),
    /// pinning. Its store and retries are the queue's: they are ignored.
    pub engine: EngineConfig,
    /// Backoff of a transient failure before the task is available again
    /// (its `max_retries` is the queue's per task, set at enqueue).
    pub backoff: RetryPolicy,
    /// How often the node writes its heartbeat.
    pub heartbeat: Duration,
    /// A node silent this long is declared dead and its tasks rescued.
    pub rescue_after: Duration,
    /// How long an idle claimer waits for a notification before it looks.
    pub poll: Duration,
    /// Outcomes written per statement, at most.
    pub batch_size: usize,
    /// An outcome waits at most this long to be written.
    pub batch_wait: Duration,
    /// Stop once nothing is available or running for this processor.
    pub exit_when_empty: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            engine: EngineConfig::default(),
            backoff: RetryPolicy::default(),
            heartbeat: Duration::from_secs(2),
            rescue_after: Duration::from_secs(20),
            poll: Duration::from_secs(1),
            batch_size: 512,
            batch_wait: Duration::from_millis(10),
            exit_when_empty: false,
        }
    }
}

/// What a node did.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerReport {
    /// `host:port/database as user`.
    pub target: String,
    /// This node's id.
    pub node_id: i64,
    /// The processor's record name.
    pub processor: String,
    /// Tasks claimed.
    pub claimed: u64,
    /// Outcomes written back.
    pub settled: Settled,
    /// Claimed tasks given back unstarted (at a stop).
    pub handed_back: u64,
    /// Rescue rounds this node ran, summed.
    pub rescued: Rescued,
    /// Whether the node stopped because it was declared dead.
    pub declared_dead: bool,
    /// The local engine's report.
    pub engine: Report,
}

/// A claimed task's outcome, on its way to the completer.
enum Done {
    Settle(i64, i32, Settle),
    HandBack(i64, i32),
}

/// The row id and attempt a claimed task carries in its id (`ID:ATTEMPT`).
fn claim_of(task: &Task) -> Option<(i64, i32)> {
    let (id, attempt) = task.id().split_once(':')?;
    Some((id.parse().ok()?, attempt.parse().ok()?))
}

struct Outcomes {
    // `Sender` is `Sync`: workers send without a lock.
    tx: Sender<Done>,
    backoff: RetryPolicy,
}

impl taskq::Observer for Outcomes {
    fn on_complete(&self, task: &Task, outcome: Outcome<'_>) {
        let Some((id, attempt)) = claim_of(task) else {
            return;
        };
        let done = match outcome {
            Outcome::Succeeded { .. } | Outcome::Duplicate { .. } => {
                Done::Settle(id, attempt, Settle::Succeeded)
            }
            Outcome::Failed { error } | Outcome::DeadLettered { error } => {
                if error.kind == "shutdown" {
                    Done::HandBack(id, attempt)
                } else {
                    let delay = self
                        .backoff
                        .delay(task.idempotency_key(), u32::try_from(attempt).unwrap_or(1));
                    Done::Settle(
                        id,
                        attempt,
                        Settle::Failed {
                            transient: error.class == ErrorClass::Transient,
                            class: error.class.to_string(),
                            kind: error.kind.to_string(),
                            message: error.message.to_string(),
                            delay,
                        },
                    )
                }
            }
        };
        let _ = self.tx.send(done);
    }
}

/// Shared between the claimer and the helper threads.
struct State {
    /// Tasks claimed and not yet written back or handed back.
    held: AtomicU64,
    /// Set by the keeper when the heartbeat is refused.
    dead: AtomicBool,
    /// Set when the node stops: the helper threads leave.
    done: AtomicBool,
    /// Wakes the claimer: a notification, or capacity freed.
    wake: (Mutex<bool>, Condvar),
    first_error: Mutex<Option<PgError>>,
}

impl State {
    fn wake(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let (lock, cv) = &self.wake;
        let mut woken = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !*woken {
            woken = cv
                .wait_timeout(woken, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *woken = false;
    }

    fn fail(&self, e: PgError) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
        self.done.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// Runs a node until `stop` is set, the queue is empty (with
/// `exit_when_empty`), or the node is declared dead.
///
/// # Errors
///
/// [`PgError`] when the server cannot be reached at start or a connection
/// fails during the run (what the node held is then rescued by another
/// node, or by this one's next start).
pub fn run(
    url: &str,
    processor: Arc<dyn Processor>,
    options: &WorkerOptions,
    stop: &AtomicBool,
) -> Result<WorkerReport, PgError> {
    let mut queue = Queue::connect(url)?;
    schema::ensure(&mut queue)?;
    let name = processor.name().to_string();
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let node_id = node::register(&mut queue, &hostname, &name)?;
    let mut completer_queue = Queue::connect(url)?;
    let mut keeper_queue = Queue::connect(url)?;
    let mut listener = Queue::connect(url)?;
    listener
        .client()
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(listener.err("cannot listen for new tasks"))?;

    let state = Arc::new(State {
        held: AtomicU64::new(0),
        dead: AtomicBool::new(false),
        done: AtomicBool::new(false),
        wake: (Mutex::new(false), Condvar::new()),
        first_error: Mutex::new(None),
    });
    let (tx, rx) = channel();
    let engine_config = EngineConfig {
        store: None,
        retry: RetryPolicy {
            max_retries: 0,
            ..options.backoff.clone()
        },
        shutdown_timeout_ms: Some(0),
        ..options.engine.clone()
    };
    // The node's bound is `held` (claimed, not yet written back). The engine
    // gets room beyond it, because it hands admission slots back in batches
    // after completion: at the same capacity a submit would wait for slots of
    // tasks already done, and the node would run below its capacity.
    let capacity = engine_config.capacity as u64;
    let engine_config = EngineConfig {
        capacity: (engine_config.capacity * 2 + 64).min(taskq::config::MAX_CAPACITY),
        ..engine_config
    };
    let engine = Engine::builder(engine_config)
        .observer(Outcomes {
            tx,
            backoff: options.backoff.clone(),
        })
        .start(processor)
        .map_err(|e| PgError::Engine(e.to_string()))?;

    let completer = {
        let state = state.clone();
        let (size, wait) = (options.batch_size.max(1), options.batch_wait);
        std::thread::Builder::new()
            .name("taskq-completer".into())
            .spawn(move || complete(&mut completer_queue, node_id, &rx, &state, size, wait))
            .map_err(|e| PgError::Engine(format!("cannot start the completer: {e}")))?
    };
    let keeper = {
        let state = state.clone();
        let (beat, after) = (options.heartbeat, options.rescue_after);
        std::thread::Builder::new()
            .name("taskq-keeper".into())
            .spawn(move || keep(&mut keeper_queue, node_id, &state, beat, after))
            .map_err(|e| PgError::Engine(format!("cannot start the keeper: {e}")))?
    };
    let listen = {
        let state = state.clone();
        let poll = options.poll;
        std::thread::Builder::new()
            .name("taskq-listener".into())
            .spawn(move || {
                while !state.done.load(Ordering::SeqCst) {
                    let got = listener
                        .client()
                        .notifications()
                        .timeout_iter(poll.min(Duration::from_millis(500)))
                        .next()
                        .map(|n| n.is_some());
                    match got {
                        Ok(true) => state.wake(),
                        Ok(false) => {}
                        Err(_) => std::thread::sleep(poll),
                    }
                }
            })
            .map_err(|e| PgError::Engine(format!("cannot start the listener: {e}")))?
    };

    // The claimer.
    let submitter = engine.submitter();
    let mut claimed = 0u64;
    let result = (|| -> Result<(), PgError> {
        while !stop.load(Ordering::SeqCst)
            && !state.done.load(Ordering::SeqCst)
            && !state.dead.load(Ordering::SeqCst)
        {
            let free = capacity.saturating_sub(state.held.load(Ordering::SeqCst));
            let got = if free > 0 {
                node::claim(&mut queue, node_id, &name, free as usize)?
            } else {
                Vec::new()
            };
            let n = got.len() as u64;
            state.held.fetch_add(n, Ordering::SeqCst);
            claimed += n;
            for c in got {
                // The processor sees the queue's attempt number.
                let task = c
                    .task
                    .with_id(format!("{}:{}", c.id, c.attempt))
                    .with_attempts(u32::try_from(c.attempt - 1).unwrap_or(0));
                if submitter.submit(task).is_err() {
                    break;
                }
            }
            if n > 0 && n == free {
                continue; // more may be waiting
            }
            if options.exit_when_empty && state.held.load(Ordering::SeqCst) == 0 {
                let left: i64 = queue
                    .client()
                    .query_one(
                        "SELECT count(*) FROM taskq_tasks
                         WHERE processor = $1 AND state IN ('available', 'running')",
                        &[&name],
                    )
                    .and_then(|r| r.try_get(0))
                    .map_err(queue.err("cannot count the tasks left"))?;
                if left == 0 {
                    break;
                }
            }
            state.wait(options.poll);
        }
        Ok(())
    })();
    drop(submitter);
    let report = engine.shutdown();
    state.done.store(true, Ordering::SeqCst);
    state.wake();
    let (settled, handed_back) = completer.join().unwrap_or_default();
    let rescued = keeper.join().unwrap_or_default();
    let _ = listen.join();
    let declared_dead = state.dead.load(Ordering::SeqCst);
    if let Some(e) = state
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e);
    }
    result?;
    if !declared_dead {
        node::leave(&mut queue, node_id)?;
    }
    Ok(WorkerReport {
        target: queue.target().to_string(),
        node_id,
        processor: name,
        claimed,
        settled,
        handed_back,
        rescued,
        declared_dead,
        engine: report,
    })
}

/// The completer: writes outcomes back in batches until the engine is
/// done and every outcome is written.
fn complete(
    queue: &mut Queue,
    node_id: i64,
    rx: &Receiver<Done>,
    state: &State,
    size: usize,
    wait: Duration,
) -> (Settled, u64) {
    let mut settled = Settled::default();
    let mut handed_back = 0u64;
    let mut batch: Vec<(i64, i32, Settle)> = Vec::with_capacity(size);
    let mut back: Vec<(i64, i32)> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let timeout = oldest.map_or(wait.max(Duration::from_millis(50)), |t| {
            wait.saturating_sub(t.elapsed())
        });
        let disconnected = match rx.recv_timeout(timeout) {
            Ok(d) => {
                match d {
                    Done::Settle(id, attempt, s) => batch.push((id, attempt, s)),
                    Done::HandBack(id, attempt) => back.push((id, attempt)),
                }
                oldest.get_or_insert_with(Instant::now);
                false
            }
            // The engine has shut down: every outcome is in the channel.
            Err(RecvTimeoutError::Timeout) => state.done.load(Ordering::SeqCst),
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = oldest.is_some_and(|t| t.elapsed() >= wait);
        if batch.len() >= size || (due || disconnected) && !(batch.is_empty() && back.is_empty()) {
            let n = (batch.len() + back.len()) as u64;
            match node::settle(queue, node_id, &batch) {
                Ok(s) => settled += s,
                Err(e) => {
                    state.fail(e);
                    return (settled, handed_back);
                }
            }
            match node::hand_back(queue, node_id, &back) {
                Ok(h) => handed_back += h,
                Err(e) => {
                    state.fail(e);
                    return (settled, handed_back);
                }
            }
            batch.clear();
            back.clear();
            oldest = None;
            state.held.fetch_sub(n, Ordering::SeqCst);
            state.wake();
        }
        if disconnected {
            return (settled, handed_back);
        }
    }
}

/// The keeper: heartbeat every `beat`, a rescue round every two.
fn keep(
    queue: &mut Queue,
    node_id: i64,
    state: &State,
    beat: Duration,
    after: Duration,
) -> Rescued {
    let mut total = Rescued::default();
    let mut round = 0u64;
    while !state.done.load(Ordering::SeqCst) {
        match node::heartbeat(queue, node_id) {
            Ok(true) => {}
            Ok(false) => {
                state.dead.store(true, Ordering::SeqCst);
                state.wake();
                return total;
            }
            Err(e) => {
                state.fail(e);
                return total;
            }
        }
        if round.is_multiple_of(2) {
            match node::rescue(queue, after, 1000) {
                Ok(r) => {
                    total.ran |= r.ran;
                    total.nodes += r.nodes;
                    total.requeued += r.requeued;
                    total.dead += r.dead;
                }
                Err(e) => {
                    state.fail(e);
                    return total;
                }
            }
        }
        round += 1;
        let until = Instant::now() + beat;
        while Instant::now() < until && !state.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(beat));
        }
    }
    total
}
