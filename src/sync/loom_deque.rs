//! A mutex-based stand-in for `crossbeam-deque`, used only under loom.
//!
//! Loom cannot see inside `crossbeam-deque`; this type offers the subset of its
//! API the scheduler uses, built on loom's `Mutex`, so that the worker loop's
//! interleavings with admission and parking are explored. Its own correctness is
//! trivial (every operation holds one lock); the protocols under test are ours.

use std::collections::VecDeque;

use super::{lock, Arc, Mutex};

/// Outcome of a steal, as in `crossbeam-deque`.
pub enum Steal<T> {
    /// The queue was empty.
    Empty,
    /// One item was taken.
    Success(T),
    /// Lost a race; try again. (Never produced by this stand-in.)
    #[allow(dead_code)]
    Retry,
}

/// How many items one batch steal moves, at most (small, to reach edge cases).
const BATCH: usize = 2;

/// Takes up to [`BATCH`] items from `src` (lock released before `dest` is locked,
/// so two workers stealing from each other cannot deadlock).
fn move_batch<T>(src: &Mutex<VecDeque<T>>, dest: &Worker<T>) -> Steal<T> {
    let mut taken: Vec<T> = {
        let mut q = lock(src);
        let n = q.len().min(BATCH);
        q.drain(..n).collect()
    };
    if taken.is_empty() {
        return Steal::Empty;
    }
    let first = taken.remove(0);
    if !taken.is_empty() {
        lock(&dest.q).extend(taken);
    }
    Steal::Success(first)
}

/// The global FIFO queue.
pub struct Injector<T> {
    q: Mutex<VecDeque<T>>,
}

impl<T> Injector<T> {
    /// An empty injector.
    pub fn new() -> Self {
        Injector {
            q: Mutex::new(VecDeque::new()),
        }
    }
    /// Appends an item.
    pub fn push(&self, t: T) {
        lock(&self.q).push_back(t);
    }
    /// True if empty (a locked read).
    pub fn is_empty(&self) -> bool {
        lock(&self.q).is_empty()
    }
    /// Items queued.
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        lock(&self.q).len()
    }
    /// Moves up to [`BATCH`] items into `dest` and returns the first.
    pub fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        move_batch(&self.q, dest)
    }
}

/// A worker's own queue.
pub struct Worker<T> {
    q: Arc<Mutex<VecDeque<T>>>,
}

impl<T> Worker<T> {
    /// An empty FIFO deque.
    pub fn new_fifo() -> Self {
        Worker {
            q: Arc::new(Mutex::new(VecDeque::new())),
        }
    }
    /// True if empty (a locked read).
    pub fn is_empty(&self) -> bool {
        lock(&self.q).is_empty()
    }
    /// Takes the oldest item (owner only).
    pub fn pop(&self) -> Option<T> {
        lock(&self.q).pop_front()
    }
    /// Appends an item (owner only).
    #[allow(dead_code)]
    pub fn push(&self, t: T) {
        lock(&self.q).push_back(t);
    }
    /// Items queued.
    pub fn len(&self) -> usize {
        lock(&self.q).len()
    }
    /// A handle for other workers to steal with.
    pub fn stealer(&self) -> Stealer<T> {
        Stealer { q: self.q.clone() }
    }
}

/// Another worker's handle on a worker's queue.
pub struct Stealer<T> {
    q: Arc<Mutex<VecDeque<T>>>,
}

impl<T> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Stealer { q: self.q.clone() }
    }
}

impl<T> Stealer<T> {
    /// True if empty (a locked read).
    pub fn is_empty(&self) -> bool {
        lock(&self.q).is_empty()
    }
    /// Moves up to [`BATCH`] items into `dest` and returns the first.
    pub fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        move_batch(&self.q, dest)
    }
}
