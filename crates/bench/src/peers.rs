//! The designs a Rust user would write instead of taskq, for the bench to
//! measure taskq against in the same run ("peers"):
//!
//! - [`PeerKind::Mpsc`]: a fixed pool of threads sharing one bounded
//!   `std::sync::mpsc::sync_channel` receiver behind a mutex (the thread
//!   pool of the Rust book);
//! - [`PeerKind::Channel`]: a fixed pool of threads each holding a clone of
//!   a bounded `crossbeam-channel` MPMC receiver;
//! - [`PeerKind::Rayon`]: `rayon::ThreadPool::spawn` per task, under a
//!   counting semaphore (a mutex and a condition variable) for the bound.
//!
//! Each runs the same [`Processor`], with the same bound as taskq's
//! capacity, the same optional per-worker SQLite claim of each key (the
//! `dedup` workload, as [`Classic`](crate::baseline::Classic) does it) and
//! the same retry of transient failures (sleeping in the worker, as
//! `Classic`). Timing is outside the design: a submit timestamp beside each
//! task and one [`Observer`] per worker thread, as for the Python ports.
//!
//! Under `--queue-first` the mpsc and channel pools spawn their workers
//! after the producers are done (the bound is then the batch); the rayon
//! pool runs from the start, and its tasks wait on a gate that
//! [`Peer::start`] opens.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use taskq::processor::Processor;
use taskq::retry::RetryPolicy;
use taskq::task::Task;

use crate::baseline::{connect_all, handle, lock, Job, Observer, SeedDb};
use crate::gate::Gate;

/// Which peer design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerKind {
    /// Threads sharing one `std::sync::mpsc` receiver.
    Mpsc,
    /// Threads sharing a bounded `crossbeam-channel`.
    Channel,
    /// `rayon::spawn` per task under a semaphore.
    Rayon,
}

/// Settings of a [`Peer`].
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Worker threads.
    pub workers: usize,
    /// The most tasks queued or running at once (mpsc, channel: the
    /// channel's capacity; rayon: the semaphore's permits).
    pub capacity: usize,
    /// Retry transient failures, sleeping the delay in the worker.
    pub retry: Option<RetryPolicy>,
}

struct Common {
    processor: Arc<dyn Processor>,
    clock: quanta::Clock,
    retry: Option<RetryPolicy>,
}

impl Common {
    fn run<O: Observer>(&self, conn: Option<&Connection>, job: Job, obs: &mut O) {
        handle(
            &*self.processor,
            &self.clock,
            conn,
            self.retry.as_ref(),
            job,
            obs,
        );
    }
}

/// A counting semaphore: what a user reaches for to bound `rayon::spawn`.
struct Semaphore {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Semaphore {
    fn acquire(&self) {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        *lock(&self.free) += 1;
        self.freed.notify_all();
    }

    /// Waits until all `n` permits are back (nothing queued or running).
    fn wait_all(&self, n: usize) {
        let mut free = lock(&self.free);
        while *free < n {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A rayon pool thread's observer and connection, made at its first task.
struct Slot {
    obs: Box<dyn Any + Send>,
    conn: Option<Connection>,
}

thread_local! {
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// The observers (and connections) no rayon pool thread has taken yet.
type Waiting<O> = Arc<Mutex<Vec<(O, Option<Connection>)>>>;

enum Design<O: Observer> {
    Mpsc {
        tx: Option<mpsc::SyncSender<Job>>,
        rx: Arc<Mutex<mpsc::Receiver<Job>>>,
        workers: Vec<JoinHandle<O>>,
    },
    Channel {
        tx: Option<crossbeam_channel::Sender<Job>>,
        rx: crossbeam_channel::Receiver<Job>,
        workers: Vec<JoinHandle<O>>,
    },
    Rayon {
        pool: Arc<rayon::ThreadPool>,
        permits: Arc<Semaphore>,
        gate: Arc<Gate>,
        /// The observers, taken by each pool thread at its first task.
        observers: Waiting<O>,
    },
}

/// A peer design, built without running workers; producers may submit
/// before [`start`](Self::start).
///
/// # Examples
///
/// ```
/// use taskq_bench::baseline::{Job, Observer};
/// use taskq_bench::peers::{Peer, PeerConfig, PeerKind};
/// use taskq::{Noop, Output, ProcessError, Task};
///
/// struct Count(u64);
/// impl Observer for Count {
///     fn completed(&mut self, _: Job, _: u64, r: Result<Output, ProcessError>) {
///         self.0 += u64::from(r.is_ok());
///     }
/// }
/// for kind in [PeerKind::Mpsc, PeerKind::Channel, PeerKind::Rayon] {
///     let config = PeerConfig { workers: 2, capacity: 8, retry: None };
///     let mut peer = Peer::new(kind, config, std::sync::Arc::new(Noop), quanta::Clock::new(), None).unwrap();
///     peer.start(|_| Count(0)).unwrap();
///     let producer = peer.producer();
///     for i in 0..100 {
///         producer.submit(Task::new(&format!("img/{i}.jpg"), "200x200".parse().unwrap()).unwrap());
///     }
///     drop(producer);
///     assert_eq!(peer.finish().iter().map(|c| c.0).sum::<u64>(), 100);
/// }
/// ```
pub struct Peer<O: Observer> {
    common: Arc<Common>,
    config: PeerConfig,
    db: Option<SeedDb>,
    design: Design<O>,
}

/// A producer's handle on a [`Peer`].
pub struct PeerProducer {
    submit: Submit,
    clock: quanta::Clock,
}

enum Submit {
    Mpsc(mpsc::SyncSender<Job>),
    Channel(crossbeam_channel::Sender<Job>),
    Rayon {
        pool: Arc<rayon::ThreadPool>,
        permits: Arc<Semaphore>,
        gate: Arc<Gate>,
        run: Arc<dyn Fn(Job) + Send + Sync>,
    },
}

impl PeerProducer {
    /// Submits a task, blocking while the bound is reached.
    pub fn submit(&self, task: Task) {
        let job = Job {
            task,
            submitted_at: self.clock.raw(),
        };
        match &self.submit {
            Submit::Mpsc(tx) => {
                let _ = tx.send(job);
            }
            Submit::Channel(tx) => {
                let _ = tx.send(job);
            }
            Submit::Rayon {
                pool,
                permits,
                gate,
                run,
            } => {
                permits.acquire();
                let (permits, gate, run) = (permits.clone(), gate.clone(), run.clone());
                pool.spawn(move || {
                    gate.wait();
                    run(job);
                    permits.release();
                });
            }
        }
    }
}

impl<O: Observer> Peer<O> {
    /// The design, with no workers running yet (rayon's pool threads start
    /// here, idle), deduplicating through `db` when given.
    ///
    /// # Errors
    ///
    /// The OS error when rayon's pool cannot start.
    ///
    /// # Panics
    ///
    /// If `config.capacity` or `config.workers` is 0.
    pub fn new(
        kind: PeerKind,
        config: PeerConfig,
        processor: Arc<dyn Processor>,
        clock: quanta::Clock,
        db: Option<SeedDb>,
    ) -> std::io::Result<Self> {
        assert!(config.capacity >= 1 && config.workers >= 1);
        let common = Arc::new(Common {
            processor,
            clock,
            retry: config.retry.clone(),
        });
        let design = match kind {
            PeerKind::Mpsc => {
                let (tx, rx) = mpsc::sync_channel(config.capacity);
                Design::Mpsc {
                    tx: Some(tx),
                    rx: Arc::new(Mutex::new(rx)),
                    workers: Vec::new(),
                }
            }
            PeerKind::Channel => {
                let (tx, rx) = crossbeam_channel::bounded(config.capacity);
                Design::Channel {
                    tx: Some(tx),
                    rx,
                    workers: Vec::new(),
                }
            }
            PeerKind::Rayon => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(config.workers)
                    .thread_name(|i| format!("rayon-{i}"))
                    .build()
                    .map_err(std::io::Error::other)?;
                Design::Rayon {
                    pool: Arc::new(pool),
                    permits: Arc::new(Semaphore {
                        free: Mutex::new(config.capacity),
                        freed: Condvar::new(),
                    }),
                    gate: Arc::new(Gate::new()),
                    observers: Arc::new(Mutex::new(Vec::new())),
                }
            }
        };
        Ok(Peer {
            common,
            config,
            db,
            design,
        })
    }

    /// A producer handle. Drop every one before [`finish`](Self::finish).
    ///
    /// # Panics
    ///
    /// After `finish` began (never: `finish` takes the peer).
    pub fn producer(&self) -> PeerProducer {
        let submit = match &self.design {
            Design::Mpsc { tx, .. } => Submit::Mpsc(tx.clone().expect("open")),
            Design::Channel { tx, .. } => Submit::Channel(tx.clone().expect("open")),
            Design::Rayon {
                pool,
                permits,
                gate,
                observers,
            } => {
                let (common, observers) = (self.common.clone(), observers.clone());
                let run = move |job: Job| {
                    SLOT.with(|slot| {
                        let mut slot = slot.borrow_mut();
                        let slot = slot.get_or_insert_with(|| {
                            let (obs, conn) = lock(&observers)
                                .pop()
                                .expect("one observer per pool thread");
                            Slot {
                                obs: Box::new(obs),
                                conn,
                            }
                        });
                        let obs = slot.obs.downcast_mut::<O>().expect("this run's observer");
                        common.run(slot.conn.as_ref(), job, obs);
                    });
                };
                Submit::Rayon {
                    pool: pool.clone(),
                    permits: permits.clone(),
                    gate: gate.clone(),
                    run: Arc::new(run),
                }
            }
        };
        PeerProducer {
            submit,
            clock: self.common.clock.clone(),
        }
    }

    /// Starts the workers; worker `i` reports to `observer(i)`.
    ///
    /// # Errors
    ///
    /// The OS error when a thread cannot be spawned, or a worker's
    /// [`SeedDb`] connection cannot be opened.
    pub fn start(&mut self, mut observer: impl FnMut(usize) -> O) -> std::io::Result<()> {
        let conns = connect_all(self.db.as_ref(), self.config.workers)?;
        match &mut self.design {
            Design::Mpsc { rx, workers, .. } => {
                for (i, conn) in conns.into_iter().enumerate() {
                    let (rx, common, mut obs) = (rx.clone(), self.common.clone(), observer(i));
                    workers.push(
                        std::thread::Builder::new()
                            .name(format!("mpsc-{i}"))
                            .spawn(move || {
                                loop {
                                    // The lock is held while waiting: the Rust
                                    // book's pool, one receiver for all.
                                    let job = lock(&rx).recv();
                                    match job {
                                        Ok(job) => common.run(conn.as_ref(), job, &mut obs),
                                        Err(_) => break,
                                    }
                                }
                                obs
                            })?,
                    );
                }
            }
            Design::Channel { rx, workers, .. } => {
                for (i, conn) in conns.into_iter().enumerate() {
                    let (rx, common, mut obs) = (rx.clone(), self.common.clone(), observer(i));
                    workers.push(
                        std::thread::Builder::new()
                            .name(format!("channel-{i}"))
                            .spawn(move || {
                                for job in rx.iter() {
                                    common.run(conn.as_ref(), job, &mut obs);
                                }
                                obs
                            })?,
                    );
                }
            }
            Design::Rayon {
                gate, observers, ..
            } => {
                *lock(observers) = conns
                    .into_iter()
                    .enumerate()
                    .map(|(i, conn)| (observer(i), conn))
                    .collect();
                gate.open();
            }
        }
        Ok(())
    }

    /// Waits for every task (after every producer handle was dropped),
    /// stops the workers and returns the observers of the threads that ran.
    ///
    /// # Panics
    ///
    /// If a worker thread panicked outside the processor, or a producer
    /// handle is still alive (mpsc, channel: the workers would wait for it).
    pub fn finish(self) -> Vec<O> {
        match self.design {
            Design::Mpsc {
                tx, workers, rx, ..
            } => {
                drop(tx);
                drop(rx);
                workers
                    .into_iter()
                    .map(|h| h.join().expect("an mpsc worker panicked"))
                    .collect()
            }
            Design::Channel { tx, workers, .. } => {
                drop(tx);
                workers
                    .into_iter()
                    .map(|h| h.join().expect("a channel worker panicked"))
                    .collect()
            }
            Design::Rayon {
                pool,
                permits,
                observers,
                ..
            } => {
                permits.wait_all(self.config.capacity);
                let mut out: Vec<O> = pool
                    .broadcast(|_| SLOT.with(|s| s.borrow_mut().take()))
                    .into_iter()
                    .flatten()
                    .map(|slot| *slot.obs.downcast::<O>().expect("this run's observer"))
                    .collect();
                // Threads that ran no task never took theirs.
                out.extend(
                    std::mem::take(&mut *lock(&observers))
                        .into_iter()
                        .map(|(o, _)| o),
                );
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::tests::Ids;
    use crate::baseline::Job;
    use taskq::processor::{Noop, Output, ProcessError};

    fn task(i: usize) -> Task {
        Task::new(&format!("img/{i}.jpg"), "1x1".parse().unwrap())
            .unwrap()
            .with_id(i.to_string())
    }

    fn ids(observers: Vec<Ids>) -> Vec<usize> {
        let mut ids: Vec<usize> = observers
            .into_iter()
            .flat_map(|o| o.0)
            .map(|s| s.parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every task once, from four producers, at capacity 1 and 64; and with
    /// the batch queued before the workers start.
    #[test]
    fn each_peer_runs_every_task_once() {
        for kind in [PeerKind::Mpsc, PeerKind::Channel, PeerKind::Rayon] {
            for (capacity, queue_first) in [(1, false), (64, false), (2000, true)] {
                let config = PeerConfig {
                    workers: 3,
                    capacity,
                    retry: None,
                };
                let mut peer =
                    Peer::new(kind, config, Arc::new(Noop), quanta::Clock::new(), None).unwrap();
                if !queue_first {
                    peer.start(|_| Ids(Vec::new())).unwrap();
                }
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let producer = peer.producer();
                        s.spawn(move || {
                            (p * 500..(p + 1) * 500).for_each(|i| producer.submit(task(i)))
                        });
                    }
                });
                if queue_first {
                    peer.start(|_| Ids(Vec::new())).unwrap();
                }
                let observers = peer.finish();
                assert!(observers.len() <= 3, "{kind:?}");
                assert_eq!(
                    ids(observers),
                    (0..2000).collect::<Vec<_>>(),
                    "{kind:?} {capacity}"
                );
            }
        }
    }

    /// With a database, a repeated key is claimed once.
    #[test]
    fn peers_deduplicate_through_the_seed_db() {
        struct Dup(u64, u64);
        impl Observer for Dup {
            fn completed(&mut self, _: Job, _: u64, r: Result<Output, ProcessError>) {
                self.0 += u64::from(r.is_ok());
            }
            fn duplicate(&mut self, _: Job, _: u64) {
                self.1 += 1;
            }
        }
        for kind in [PeerKind::Mpsc, PeerKind::Channel, PeerKind::Rayon] {
            let dir = tempfile::tempdir().unwrap();
            let db = SeedDb::create(dir.path().join("seed.db")).unwrap();
            let config = PeerConfig {
                workers: 2,
                capacity: 8,
                retry: None,
            };
            let mut peer =
                Peer::new(kind, config, Arc::new(Noop), quanta::Clock::new(), Some(db)).unwrap();
            peer.start(|_| Dup(0, 0)).unwrap();
            let producer = peer.producer();
            for i in 0..30 {
                producer.submit(task(i % 10));
            }
            drop(producer);
            let out = peer.finish();
            let (ok, dup) = out.iter().fold((0, 0), |(a, b), o| (a + o.0, b + o.1));
            assert_eq!((ok, dup), (10, 20), "{kind:?}");
        }
    }
}
