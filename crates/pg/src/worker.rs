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
//! - the keeper: the heartbeat and a rescue round every `heartbeat`
//!   interval;
//! - the janitor: vacuums the tasks table when it holds `vacuum_after`
//!   dead row versions (one node at a time), so that claiming does not slow
//!   down where autovacuum is off or too slow for the churn. A node whose heartbeat is refused (it was declared dead)
//!   registers again under a new id and goes on: the writes of the tasks it
//!   held under the old id are fenced off (the rescue gave them to others).
//!
//! # Lost connections
//!
//! Each thread has its own connection. When one is lost (reset, cut,
//! terminated by the server, the server restarting), that thread reconnects
//! with backoff (100 ms doubling to 5 s) and runs its statement again; the
//! others go on. While the heartbeat cannot be written the claimer claims
//! nothing, since the tasks could be rescued from under it. A claim whose
//! answer was lost may have committed: after reconnecting, the claimer asks
//! which tasks the queue says the node holds and hands back those it did
//! not receive. A node that cannot reconnect for `give_up_after` stops with
//! the error; what it held is rescued by the others.
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

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use serde::Serialize;
use taskq::engine::Outcome;
use taskq::{
    Durability, Engine, EngineConfig, ErrorClass, Processor, ProgressHandle, Report, RetryPolicy,
    Task,
};

use crate::link::{Link, Setup};
use crate::node::{self, NodeStats, Rescued, Settle, Settled};
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
    /// A task claimed this long ago is rescued whoever holds it (a hung
    /// processor, or a completion the server lost in a crash).
    pub deadline: Duration,
    /// How long an idle claimer waits for a notification before it looks.
    pub poll: Duration,
    /// Outcomes written per statement, at most (and at most half the
    /// engine's capacity, so that the claimer refills while half runs).
    pub batch_size: usize,
    /// An outcome waits at most this long to be written.
    pub batch_wait: Duration,
    /// [`Durability::Batch`]: outcome batches commit without waiting for
    /// the server's WAL flush (`synchronous_commit = off`); a server crash
    /// may lose the last fraction of a second of them, and those tasks run
    /// again after the deadline. [`Durability::GroupCommit`]: a batch is
    /// written back only once the server has flushed it.
    pub durability: Durability,
    /// A node that cannot reach the server this long stops with the error.
    pub give_up_after: Duration,
    /// Vacuum the tasks table once it holds this many dead row versions
    /// (one node at a time; 0: never). See [`node::vacuum_if_needed`].
    pub vacuum_after: u64,
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
            deadline: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
            batch_size: 512,
            batch_wait: Duration::from_millis(25),
            durability: Durability::Batch,
            give_up_after: Duration::from_secs(300),
            vacuum_after: 500_000,
            exit_when_empty: false,
        }
    }
}

/// What a node did.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerReport {
    /// `host:port/database as user`.
    pub target: String,
    /// This node's id (the first one, when it registered again).
    pub node_id: i64,
    /// Every id the node ran under: a node declared dead registers again.
    pub node_ids: Vec<i64>,
    /// The processor's record name.
    pub processor: String,
    /// Tasks claimed.
    pub claimed: u64,
    /// Outcomes written back.
    pub settled: Settled,
    /// Claimed tasks given back unstarted (at a stop, or after a claim
    /// whose answer was lost).
    pub handed_back: u64,
    /// Rescue rounds this node ran, summed.
    pub rescued: Rescued,
    /// Times the node was declared dead and registered again.
    pub declared_dead: u64,
    /// Connections lost and made again, all threads together.
    pub reconnects: u64,
    /// Vacuums of the tasks table this node ran.
    pub vacuums: u64,
    /// Statements the node sent (claims, write-backs, heartbeats, rescue
    /// rounds; `BEGIN`/`COMMIT` included).
    pub statements: u64,
    /// The local engine's report.
    pub engine: Report,
}

/// A claimed task's outcome, on its way to the completer.
struct Done {
    node: i64,
    id: i64,
    attempt: i32,
    what: Option<Settle>, // None: hand back
}

/// The node, row id and attempt a claimed task carries in its id
/// (`NODE:ID:ATTEMPT`).
fn claim_of(task: &Task) -> Option<(i64, i64, i32)> {
    let mut parts = task.id().split(':');
    let node = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    Some((node, id, attempt))
}

struct Outcomes {
    // `Sender` is `Sync`: workers send without a lock.
    tx: Sender<Done>,
    backoff: RetryPolicy,
}

impl taskq::Observer for Outcomes {
    fn on_complete(&self, task: &Task, outcome: Outcome<'_>) {
        let Some((node, id, attempt)) = claim_of(task) else {
            return;
        };
        let what = match outcome {
            Outcome::Succeeded { .. } | Outcome::Duplicate { .. } => Some(Settle::Succeeded),
            Outcome::Failed { error } | Outcome::DeadLettered { error } => {
                if error.kind == "shutdown" {
                    None
                } else {
                    let delay = self
                        .backoff
                        .delay(task.idempotency_key(), u32::try_from(attempt).unwrap_or(1));
                    Some(Settle::Failed {
                        transient: error.class == ErrorClass::Transient,
                        class: error.class.to_string(),
                        kind: error.kind.to_string(),
                        message: error.message.to_string(),
                        delay,
                    })
                }
            }
        };
        let _ = self.tx.send(Done {
            node,
            id,
            attempt,
            what,
        });
    }
}

/// Shared between the claimer and the helper threads.
struct State {
    /// Claims (row, attempt) not yet written back or handed back.
    held: Mutex<HashSet<(i64, i32)>>,
    /// The id the node claims under now.
    node: AtomicI64,
    /// When the heartbeat was last written, in ms since `epoch`.
    beat_ms: AtomicU64,
    epoch: Instant,
    /// Set when the node stops: the helper threads leave.
    done: AtomicBool,
    /// Wakes the claimer: a notification, or capacity freed.
    wake: (Mutex<bool>, Condvar),
    first_error: Mutex<Option<PgError>>,
    declared_dead: AtomicU64,
    /// Tasks claimed so far (written by the claimer, read by a [`NodeView`]).
    claimed: AtomicU64,
    node_ids: Mutex<Vec<i64>>,
    /// Cancels the janitor's vacuum at a stop.
    vacuum_cancel: Mutex<Option<postgres::CancelToken>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn wake(&self) {
        let (flag, cv) = &self.wake;
        *lock(flag) = true;
        cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let (flag, cv) = &self.wake;
        let mut woken = lock(flag);
        if !*woken {
            woken = cv
                .wait_timeout(woken, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *woken = false;
    }

    fn fail(&self, e: PgError) {
        lock(&self.first_error).get_or_insert(e);
        self.done.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.beat_ms.store(ms, Ordering::SeqCst);
    }

    /// Time since the heartbeat was last written.
    fn since_beat(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.beat_ms.load(Ordering::SeqCst)))
    }
}

/// A running node seen from another thread: its local engine's live view
/// and what the node holds. Cheap to clone; every read is a racy snapshot.
#[derive(Clone)]
pub struct NodeView {
    state: Arc<State>,
    engine: ProgressHandle,
    reconnects: Arc<AtomicU64>,
    capacity: usize,
    processor: String,
}

impl NodeView {
    /// The id the node claims under now (it changes when the node is
    /// declared dead and registers again).
    pub fn node_id(&self) -> i64 {
        self.state.node.load(Ordering::SeqCst)
    }

    /// The first id this node registered under (stable for its whole run).
    pub fn first_node_id(&self) -> i64 {
        lock(&self.state.node_ids)
            .first()
            .copied()
            .unwrap_or_default()
    }

    /// The processor whose tasks the node claims.
    pub fn processor(&self) -> &str {
        &self.processor
    }

    /// The local engine, for its live view.
    pub fn engine(&self) -> &ProgressHandle {
        &self.engine
    }

    /// Claims held now: claimed, not yet written back or handed back.
    pub fn held(&self) -> usize {
        lock(&self.state.held).len()
    }

    /// The most claims the node holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tasks claimed so far.
    pub fn claimed(&self) -> u64 {
        self.state.claimed.load(Ordering::Relaxed)
    }

    /// Time since the node last wrote its heartbeat.
    pub fn since_heartbeat(&self) -> Duration {
        self.state.since_beat()
    }

    /// Times the node was declared dead and registered again.
    pub fn declared_dead(&self) -> u64 {
        self.state.declared_dead.load(Ordering::SeqCst)
    }

    /// Connections lost and made again, all threads together.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }
}

/// Runs a node until `stop` is set, the queue is empty (with
/// `exit_when_empty`), or the server stays unreachable for
/// `give_up_after`.
///
/// # Errors
///
/// [`PgError`] when the server cannot be reached at start, stays
/// unreachable for `give_up_after` during the run, or a statement fails
/// for another reason than a lost connection (what the node held is then
/// rescued by another node, or by this one's next start).
pub fn run(
    url: &str,
    processor: Arc<dyn Processor>,
    options: &WorkerOptions,
    stop: &AtomicBool,
) -> Result<WorkerReport, PgError> {
    run_watched(url, processor, options, stop, |_| {})
}

/// Like [`run`], handing `watch` a [`NodeView`] once the node has registered
/// and its engine runs (before the first claim), for a monitor on another
/// thread.
///
/// # Errors
///
/// As [`run`].
pub fn run_watched(
    url: &str,
    processor: Arc<dyn Processor>,
    options: &WorkerOptions,
    stop: &AtomicBool,
    watch: impl FnOnce(NodeView),
) -> Result<WorkerReport, PgError> {
    let reconnects = Arc::new(AtomicU64::new(0));
    let give_up = options.give_up_after;
    let open = |role, setup: Setup| Link::open(url, role, setup, give_up, reconnects.clone());
    // Claims, hand-backs and heartbeats do not wait for the server's WAL
    // flush: one lost in a server crash is undone with it (the task is
    // available again; a later write of the claim is fenced off).
    let mut claimer = open("claimer", synchronous_commit("off"))?;
    schema::ensure(claimer.queue())?;
    let name = processor.name().to_string();
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let node_id = node::register(claimer.queue(), &hostname, &name)?;
    let synchronous = match options.durability {
        Durability::Batch => "off",
        Durability::GroupCommit => "on",
    };
    let mut completer_link = open("completer", synchronous_commit(synchronous))?;
    let mut keeper_link = open("keeper", synchronous_commit("off"))?;
    let mut janitor_link = open("janitor", Box::new(|_| Ok(())))?;
    let mut listener = open(
        "listener",
        Box::new(|q: &mut Queue| {
            let err = q.err("cannot listen for new tasks");
            q.client()
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(err)
        }),
    )?;

    let state = Arc::new(State {
        held: Mutex::new(HashSet::new()),
        node: AtomicI64::new(node_id),
        beat_ms: AtomicU64::new(0),
        epoch: Instant::now(),
        done: AtomicBool::new(false),
        wake: (Mutex::new(false), Condvar::new()),
        first_error: Mutex::new(None),
        declared_dead: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
        node_ids: Mutex::new(vec![node_id]),
        vacuum_cancel: Mutex::new(None),
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
    let capacity = engine_config.capacity;
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

    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(format!("taskq-{name}"))
            .spawn(f)
            .map_err(|e| PgError::Engine(format!("cannot start the {name}: {e}")))
    };
    let (done_tx, done_rx) = channel();
    let completer = {
        let state = state.clone();
        // A batch is written once it holds half of what the node may hold:
        // the claimer can then refill while the other half runs.
        let size = options.batch_size.clamp(1, (capacity / 2).max(1));
        let wait = options.batch_wait;
        spawn(
            "completer",
            Box::new(move || {
                let r = complete(&mut completer_link, &rx, &state, size, wait);
                let _ = done_tx.send((r, completer_link.queue().statements()));
            }),
        )?
    };
    let (kept_tx, kept_rx) = channel();
    let keeper = {
        let state = state.clone();
        let published = engine.progress_handle();
        let options = options.clone();
        let (hostname, name) = (hostname.clone(), name.clone());
        spawn(
            "keeper",
            Box::new(move || {
                let r = keep(
                    &mut keeper_link,
                    &state,
                    &published,
                    &hostname,
                    &name,
                    &options,
                );
                let _ = kept_tx.send((r, keeper_link.queue().statements()));
            }),
        )?
    };
    let listen = {
        let state = state.clone();
        let poll = options.poll;
        spawn(
            "listener",
            Box::new(move || listen(&mut listener, &state, poll)),
        )?
    };
    let (swept_tx, swept_rx) = channel();
    let janitor = {
        let state = state.clone();
        let (every, after) = (options.heartbeat, options.vacuum_after);
        spawn(
            "janitor",
            Box::new(move || {
                let n = sweep(&mut janitor_link, &state, every, after);
                let _ = swept_tx.send((n, janitor_link.queue().statements()));
            }),
        )?
    };

    watch(NodeView {
        state: state.clone(),
        engine: engine.progress_handle(),
        reconnects: reconnects.clone(),
        capacity,
        processor: name.clone(),
    });

    // The claimer.
    let submitter = engine.submitter();
    let mut claimed = 0u64;
    let mut handed_back = 0u64;
    let quit = || stop.load(Ordering::SeqCst) || state.done();
    // Claims stop while the heartbeat is this old: the node could be
    // declared dead and its tasks rescued from under it.
    let beat_limit = options.rescue_after / 2;
    let result = (|| -> Result<(), PgError> {
        state.beat();
        while !quit() {
            if state.since_beat() > beat_limit {
                state.wait(options.heartbeat.min(options.poll));
                continue;
            }
            let node_now = state.node.load(Ordering::SeqCst);
            let free = capacity.saturating_sub(lock(&state.held).len());
            let got = if free > 0 {
                let generation = claimer.generation();
                let got = claimer.call(&quit, |q| node::claim(q, node_now, &name, free))?;
                if claimer.generation() != generation {
                    // A claim whose answer was lost may have committed.
                    handed_back += claimer.call(&quit, |q| {
                        let known = lock(&state.held).clone();
                        let orphans: Vec<(i64, i32)> = node::leased_to(q, node_now)?
                            .into_iter()
                            .filter(|claim| {
                                !known.contains(claim)
                                    && !got.iter().any(|c| (c.id, c.attempt) == *claim)
                            })
                            .collect();
                        node::hand_back(q, node_now, &orphans)
                    })?;
                }
                got
            } else {
                Vec::new()
            };
            let n = got.len();
            lock(&state.held).extend(got.iter().map(|c| (c.id, c.attempt)));
            claimed += n as u64;
            state.claimed.store(claimed, Ordering::Relaxed);
            for c in got {
                // The processor sees the queue's attempt number.
                let task = c
                    .task
                    .with_id(format!("{node_now}:{}:{}", c.id, c.attempt))
                    .with_attempts(u32::try_from(c.attempt - 1).unwrap_or(0));
                if submitter.submit(task).is_err() {
                    break;
                }
            }
            if n > 0 && n == free {
                continue; // more may be waiting
            }
            if options.exit_when_empty && lock(&state.held).is_empty() {
                let left: i64 = claimer.call(&quit, |q| {
                    let err = q.err("cannot count the tasks left");
                    q.count(1);
                    q.client()
                        .query_one(
                            "SELECT count(*) FROM taskq_tasks
                             WHERE processor = $1 AND state IN ('available', 'running')",
                            &[&name],
                        )
                        .and_then(|r| r.try_get(0))
                        .map_err(err)
                })?;
                if left == 0 {
                    break;
                }
            }
            state.wait(options.poll);
        }
        Ok(())
    })();
    drop(submitter);
    let handle = engine.progress_handle();
    let report = engine.shutdown();
    state.done.store(true, Ordering::SeqCst);
    state.wake();
    if let Some(token) = lock(&state.vacuum_cancel).take() {
        let _ = token.cancel_query(postgres::NoTls);
    }
    let _ = completer.join();
    let _ = keeper.join();
    let _ = listen.join();
    let _ = janitor.join();
    let (vacuums, janitor_statements) = swept_rx.recv().unwrap_or_default();
    let ((settled, back), completer_statements) = done_rx.recv().unwrap_or_default();
    let (rescued, keeper_statements) = kept_rx.recv().unwrap_or_default();
    handed_back += back;
    if let Some(e) = lock(&state.first_error).take() {
        return Err(e);
    }
    // Stopped while the server was unreachable: the stop wins; what the
    // node held is rescued by the others.
    if let Err(e) = result {
        if !(stop.load(Ordering::SeqCst) && e.is_connection_lost()) {
            return Err(e);
        }
    }
    let node_now = state.node.load(Ordering::SeqCst);
    let finished = Publish::default().next(&handle).finished;
    claimer.call(&|| false, |q| node::leave(q, node_now, finished))?;
    let node_ids = lock(&state.node_ids).clone();
    Ok(WorkerReport {
        target: claimer.queue().target().to_string(),
        node_id,
        node_ids,
        processor: name,
        claimed,
        settled,
        handed_back,
        rescued,
        declared_dead: state.declared_dead.load(Ordering::SeqCst),
        reconnects: reconnects.load(Ordering::SeqCst),
        vacuums,
        statements: claimer.queue().statements()
            + completer_statements
            + keeper_statements
            + janitor_statements,
        engine: report,
    })
}

/// Sets `synchronous_commit` on every (re)connection.
fn synchronous_commit(value: &'static str) -> Setup {
    Box::new(move |q: &mut Queue| {
        let err = q.err("cannot set synchronous_commit");
        q.client()
            .batch_execute(&format!("SET synchronous_commit = {value}"))
            .map_err(err)
    })
}

/// The listener: wakes the claimer on each notification; after a lost
/// connection it listens again and wakes the claimer (it may have missed
/// some).
fn listen(link: &mut Link, state: &State, poll: Duration) {
    while !state.done() {
        let got = link
            .queue()
            .client()
            .notifications()
            .timeout_iter(poll.min(Duration::from_millis(500)))
            .next()
            .map(|n| n.is_some());
        match got {
            Ok(true) => state.wake(),
            Ok(false) => {}
            Err(e) => {
                let e = PgError::query(format!("{}: lost LISTEN", link.queue().target()))(e);
                if link.restore(e, &|| state.done()).is_ok() {
                    state.wake();
                }
            }
        }
    }
}

/// The janitor: every `every`, vacuums the tasks table when it holds
/// `after` dead row versions (0: never). Returns the vacuums it ran.
fn sweep(link: &mut Link, state: &State, every: Duration, after: u64) -> u64 {
    let mut vacuums = 0;
    if after == 0 {
        return 0;
    }
    while !state.done() {
        *lock(&state.vacuum_cancel) = Some(link.queue().client().cancel_token());
        match link.call(&|| state.done(), |q| node::vacuum_if_needed(q, after)) {
            Ok(Some(dead)) => {
                vacuums += 1;
                tracing::debug!(dead, "vacuumed the tasks table");
            }
            Ok(None) => {}
            // A vacuum cancelled at the stop, or refused: not the node's end.
            Err(e) => {
                if !state.done() {
                    tracing::warn!(error = %e, "vacuum failed");
                }
            }
        }
        let until = Instant::now() + every;
        while Instant::now() < until && !state.done() {
            std::thread::sleep(Duration::from_millis(50).min(every));
        }
    }
    vacuums
}

/// Writes one batch: grouped by the node id each task was claimed under
/// (more than one only after the node registered again).
fn write_batch(q: &mut Queue, batch: &[Done]) -> Result<(Settled, u64), PgError> {
    let mut settled = Settled::default();
    let mut back = 0;
    let mut nodes: Vec<i64> = batch.iter().map(|d| d.node).collect();
    nodes.sort_unstable();
    nodes.dedup();
    for node in nodes {
        let mine = batch.iter().filter(|d| d.node == node);
        let outcomes: Vec<(i64, i32, Settle)> = mine
            .clone()
            .filter_map(|d| d.what.clone().map(|s| (d.id, d.attempt, s)))
            .collect();
        let returned: Vec<(i64, i32)> = mine
            .filter(|d| d.what.is_none())
            .map(|d| (d.id, d.attempt))
            .collect();
        settled += node::settle(q, node, &outcomes)?;
        back += node::hand_back(q, node, &returned)?;
    }
    Ok((settled, back))
}

/// The completer: writes outcomes back in batches until the engine is
/// done and every outcome is written.
fn complete(
    link: &mut Link,
    rx: &Receiver<Done>,
    state: &State,
    size: usize,
    wait: Duration,
) -> (Settled, u64) {
    let mut settled = Settled::default();
    let mut handed_back = 0u64;
    let mut batch: Vec<Done> = Vec::with_capacity(size);
    let mut oldest: Option<Instant> = None;
    loop {
        let timeout = oldest.map_or(wait.max(Duration::from_millis(50)), |t| {
            wait.saturating_sub(t.elapsed())
        });
        let disconnected = match rx.recv_timeout(timeout) {
            Ok(d) => {
                batch.push(d);
                oldest.get_or_insert_with(Instant::now);
                false
            }
            // The engine has shut down: every outcome is in the channel.
            Err(RecvTimeoutError::Timeout) => state.done(),
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = oldest.is_some_and(|t| t.elapsed() >= wait);
        if batch.len() >= size || (due || disconnected) && !batch.is_empty() {
            // Outcomes are written even after a stop: only the give-up time
            // ends the retries.
            match link.call(&|| false, |q| write_batch(q, &batch)) {
                Ok((s, b)) => {
                    settled += s;
                    handed_back += b;
                }
                Err(e) => {
                    state.fail(e);
                    return (settled, handed_back);
                }
            }
            {
                let mut held = lock(&state.held);
                for d in &batch {
                    held.remove(&(d.id, d.attempt));
                }
            }
            batch.clear();
            oldest = None;
            state.wake();
        }
        if disconnected {
            return (settled, handed_back);
        }
    }
}

/// What the keeper publishes with each heartbeat: the engine's totals, and
/// their rates since the previous heartbeat.
#[derive(Default)]
struct Publish {
    last: Option<(Instant, u64, f64)>,
}

impl Publish {
    fn next(&mut self, engine: &ProgressHandle) -> NodeStats {
        let live = engine.live();
        let now = Instant::now();
        let finished = live.completed();
        let busy_s: f64 = live.workers.iter().map(|w| w.busy_s).sum();
        let workers = live.workers.len();
        let (tasks_per_s, busy_ratio) = match self.last {
            Some((at, f, b)) if now > at => {
                let dt = now.duration_since(at).as_secs_f64();
                (
                    Some(finished.saturating_sub(f) as f64 / dt),
                    Some(((busy_s - b).max(0.0) / (dt * workers.max(1) as f64)).min(1.0)),
                )
            }
            _ => (None, None),
        };
        self.last = Some((now, finished, busy_s));
        NodeStats {
            workers: i32::try_from(workers).unwrap_or(i32::MAX),
            finished: i64::try_from(finished).unwrap_or(i64::MAX),
            tasks_per_s,
            busy_ratio,
        }
    }
}

/// The keeper: heartbeat and a rescue round every `options.heartbeat`.
/// Declared dead (its heartbeat refused), the node registers again under a
/// new id.
fn keep(
    link: &mut Link,
    state: &State,
    engine: &ProgressHandle,
    hostname: &str,
    processor: &str,
    options: &WorkerOptions,
) -> Rescued {
    let (beat, after, deadline) = (options.heartbeat, options.rescue_after, options.deadline);
    let mut total = Rescued::default();
    let quit = || state.done();
    let mut publish = Publish::default();
    while !state.done() {
        let node_now = state.node.load(Ordering::SeqCst);
        let stats = publish.next(engine);
        match link.call(&quit, |q| node::heartbeat(q, node_now, &stats)) {
            Ok(true) => state.beat(),
            Ok(false) => {
                // Declared dead: the rescue has given (or will give) this
                // id's tasks to others; their writes will be fenced off.
                match link.call(&quit, |q| node::register(q, hostname, processor)) {
                    Ok(new) => {
                        tracing::warn!(
                            old = node_now,
                            new,
                            "this node was declared dead (its heartbeat was late); registered again"
                        );
                        state.node.store(new, Ordering::SeqCst);
                        state.declared_dead.fetch_add(1, Ordering::SeqCst);
                        lock(&state.node_ids).push(new);
                        state.beat();
                        state.wake();
                    }
                    Err(e) => {
                        if !state.done() {
                            state.fail(e);
                        }
                        return total;
                    }
                }
            }
            Err(e) => {
                if !state.done() {
                    state.fail(e);
                }
                return total;
            }
        }
        // A rescue round every beat: a dead node's tasks are back at most
        // `after + beat` after its last heartbeat.
        match link.call(&quit, |q| node::rescue(q, after, deadline, 1000)) {
            Ok(r) => {
                total.ran |= r.ran;
                total.nodes += r.nodes;
                total.requeued += r.requeued;
                total.dead += r.dead;
            }
            Err(e) => {
                if !state.done() {
                    state.fail(e);
                }
                return total;
            }
        }
        let until = Instant::now() + beat;
        while Instant::now() < until && !state.done() {
            std::thread::sleep(Duration::from_millis(50).min(beat));
        }
    }
    total
}
