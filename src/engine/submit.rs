//! Producers' handles: [`Submitter`] and its per-handle counters.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use super::pool::Spare;
use super::{Job, Shared};
use crate::admission::{Admission, AdmissionMode, AdmitError};
use crate::scheduler::Lane;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::{lock, Arc};
use crate::task::Task;

/// Per-submitter counters. Single writer (the handle, which is `!Sync`), so
/// increments are a relaxed load and store rather than a locked RMW.
#[derive(Default)]
pub(crate) struct ProducerStats {
    pub(crate) submitted: AtomicU64,
    pub(crate) admitted: AtomicU64,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) rejected_closed: AtomicU64,
}

#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// A producer's handle: submits tasks to an [`Engine`](crate::Engine).
///
/// Clone one per producer thread. A handle is `Send` but not `Sync`: it owns a
/// lane (a deque only it pushes to, which workers steal from) and its own
/// counters, so submitting touches no shared cache line besides the admission
/// word. Dropping a handle retires its lane: an empty lane goes at once; one
/// still holding tasks stays visible to the workers, who steal it empty before
/// it is dropped, so nothing submitted is lost or copied.
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return; }
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
    lane: Option<Lane<Box<Job>>>,
    /// Recycled job boxes to fill (see `engine::pool`).
    spare: RefCell<Spare>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Slots [`Submitter::submit_iter`] reserves at once, at most.
const SUBMIT_CHUNK: usize = 256;

impl Submitter {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let stats = Arc::new(ProducerStats::default());
        lock(&shared.producers).push(stats.clone());
        let lane = Some(shared.scheduler.open_lane());
        Submitter {
            shared,
            stats,
            lane,
            spare: RefCell::new(Spare::new()),
            _not_sync: PhantomData,
        }
    }

    #[inline]
    fn lane(&self) -> &Lane<Box<Job>> {
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
        bump(&self.stats.submitted, 1);
        match acquire(&self.shared.admission) {
            Ok(()) => {
                // Latency counts from admission: time a producer spent blocked
                // for room is the producer's, not the engine's (and so the mean
                // depth from Little's law stays within the capacity).
                let submitted_at = self.shared.clock.raw();
                bump(&self.stats.admitted, 1);
                let job = self
                    .spare
                    .borrow_mut()
                    .boxed(&self.shared.pool, Job::new(task, submitted_at));
                self.shared.scheduler.push_lane(self.lane(), job);
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
    /// chunk share one submit timestamp. A chunk is never larger than what
    /// `tasks` can still yield by its `size_hint`; an iterator without an
    /// upper bound may reserve slots past its end, which are handed back (and
    /// parked producers woken) as soon as it runs out.
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
    /// # if cfg!(feature = "loom") { return; }
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
        let mut spare = self.spare.borrow_mut();
        while let Some(first) = tasks.next() {
            // Never reserve more than the iterator says it can still yield: a
            // surplus is handed back below, but until then it keeps other
            // producers out (and in reject mode, turns them away).
            let left = tasks.size_hint().1.map_or(usize::MAX, |n| n + 1);
            let want = SUBMIT_CHUNK.min(left);
            let reserved = match self.shared.mode {
                AdmissionMode::Block => admission.acquire_many(want),
                AdmissionMode::Reject => admission.try_acquire_many(want),
            };
            let reserved = match reserved {
                Ok(k) => k,
                Err(e) => {
                    drop(spare);
                    bump(&self.stats.submitted, 1);
                    return Err(self.refused(e, first));
                }
            };
            let submitted_at = self.shared.clock.raw();
            let mut chunk = Chunk {
                submitter: self,
                reserved,
                used: 0,
            };
            let jobs = std::iter::once(first)
                .chain(tasks.by_ref().take(reserved - 1))
                .map(|task| {
                    chunk.used += 1;
                    spare.boxed(&self.shared.pool, Job::new(task, submitted_at))
                });
            self.shared.scheduler.push_lane_all(self.lane(), jobs);
            admitted += chunk.used as u64;
        }
        Ok(admitted)
    }
}

/// The slots [`Submitter::submit_iter`] reserved for one chunk. Dropping it,
/// at the end of the chunk or while the caller's iterator unwinds from a
/// panic, counts the tasks that went in and hands back the slots they did not
/// use, so that a panicking iterator leaves no phantom depth behind (which
/// would keep the engine from ever draining).
struct Chunk<'a> {
    submitter: &'a Submitter,
    reserved: usize,
    used: usize,
}

impl Drop for Chunk<'_> {
    fn drop(&mut self) {
        let Chunk {
            submitter: s,
            reserved,
            used,
        } = *self;
        if used < reserved && s.shared.admission.unreserve(reserved - used).is_some() {
            s.shared.on_drained();
        }
        bump(&s.stats.submitted, used as u64);
        bump(&s.stats.admitted, used as u64);
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
        self.spare.get_mut().return_to(&self.shared.pool);
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
