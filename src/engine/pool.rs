//! Recycled job boxes: workers hand finished jobs' allocations back to the
//! producers in batches instead of freeing them.
//!
//! A job is allocated by a producer thread and finished on a worker. Freeing
//! it there is a cross-thread free: the allocator queues the block on its
//! owner's page with an atomic operation and the producer later collects it,
//! a cost paid on both sides for every task (about a third of a worker's time
//! on no-op tasks). With the pool a worker keeps finished boxes in a local
//! batch and publishes a full batch with one lock; a producer takes a whole
//! batch with one lock and refills the boxes in place. One lock per
//! [`BATCH`] tasks on each side replaces an allocation and a remote free per
//! task.
//!
//! The pool is bounded (`max_batches`): boxes beyond it are freed, so it holds
//! at most what the engine held at its peak, which admission already bounds.

// The boxes themselves are what is recycled: a `Vec<Job>` would move the
// jobs, not keep their allocations.
#![allow(clippy::vec_box)]

use super::Job;
use crate::sync::{lock, Mutex};

/// Boxes per batch.
pub(crate) const BATCH: usize = 64;

/// Batches of finished job boxes, ready to be refilled.
pub(crate) struct JobPool {
    batches: Mutex<Vec<Vec<Box<Job>>>>,
    max_batches: usize,
}

impl JobPool {
    /// A pool that keeps at most `max_boxes` boxes (rounded up to a batch).
    pub(crate) fn new(max_boxes: usize) -> Self {
        JobPool {
            batches: Mutex::new(Vec::new()),
            max_batches: max_boxes.div_ceil(BATCH),
        }
    }

    /// A batch of boxes to refill, if the pool has one.
    #[inline]
    pub(crate) fn take(&self) -> Option<Vec<Box<Job>>> {
        lock(&self.batches).pop()
    }

    /// Returns a batch of finished boxes; frees it when the pool is full.
    pub(crate) fn give(&self, batch: Vec<Box<Job>>) {
        let mut batches = lock(&self.batches);
        if batches.len() < self.max_batches {
            batches.push(batch);
            return;
        }
        drop(batches);
        drop(batch);
    }
}

/// A producer's or a worker's local supply of boxes.
pub(crate) struct Spare {
    boxes: Vec<Box<Job>>,
}

impl Spare {
    /// An empty supply.
    pub(crate) fn new() -> Self {
        Spare { boxes: Vec::new() }
    }

    /// `job` in a box: a recycled one when `pool` has any, else a new one.
    #[inline]
    pub(crate) fn boxed(&mut self, pool: &JobPool, job: Job) -> Box<Job> {
        if self.boxes.is_empty() {
            if let Some(batch) = pool.take() {
                self.boxes = batch;
            }
        }
        match self.boxes.pop() {
            Some(mut b) => {
                // `recycle` left `Task::empty()` and no retry state in the
                // box: nothing owns memory, so the old value is forgotten
                // rather than dropped. Dropping it would read the lines the
                // worker wrote last and wait for them to cross cores; a
                // write-only fill lets the stores overlap. (The read of the
                // forgotten value is dead and compiles away.)
                std::mem::forget(std::mem::replace(&mut *b, job));
                b
            }
            None => Box::new(job),
        }
    }

    /// Keeps a finished job's box, publishing a full batch to `pool`. The
    /// job's contents are dropped here, on the thread that finished it.
    #[inline]
    pub(crate) fn recycle(&mut self, pool: &JobPool, mut job: Box<Job>) {
        job.task = crate::Task::empty();
        job.retry = None;
        if self.boxes.capacity() == 0 {
            self.boxes.reserve_exact(BATCH);
        }
        self.boxes.push(job);
        if self.boxes.len() == BATCH {
            pool.give(std::mem::take(&mut self.boxes));
        }
    }

    /// Hands every box held to `pool` (or frees them).
    pub(crate) fn return_to(&mut self, pool: &JobPool) {
        if !self.boxes.is_empty() {
            pool.give(std::mem::take(&mut self.boxes));
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::Task;

    fn job(key: &str) -> Job {
        Job::new(Task::new(key, "200x200".parse().unwrap()).unwrap(), 7)
    }

    #[test]
    fn a_full_batch_goes_back_and_its_boxes_are_refilled() {
        let pool = JobPool::new(BATCH);
        let mut worker = Spare::new();
        let boxes: Vec<Box<Job>> = (0..BATCH).map(|_| Box::new(job("img/a.jpg"))).collect();
        let addrs: Vec<*const Job> = boxes.iter().map(|b| &**b as *const Job).collect();
        for b in boxes {
            worker.recycle(&pool, b);
        }
        let mut producer = Spare::new();
        let b = producer.boxed(&pool, job("img/b.jpg"));
        assert!(
            addrs.contains(&(&*b as *const Job)),
            "a recycled box is reused"
        );
        assert_eq!(b.task.image_key, "img/b.jpg");
        assert_eq!(b.submitted_at, 7);
        assert!(b.retry.is_none() && !b.claimed);
    }

    #[test]
    fn recycling_drops_the_task_and_the_retry_state() {
        let pool = JobPool::new(BATCH);
        let mut worker = Spare::new();
        let mut j = Box::new(job("img/a.jpg"));
        j.retry_mut().expired = true;
        worker.recycle(&pool, j);
        let mut producer = Spare::new();
        // Not a full batch yet: the producer gets a fresh box.
        assert!(pool.take().is_none());
        let b = producer.boxed(&pool, job("img/c.jpg"));
        assert_eq!(b.task.image_key, "img/c.jpg");
        worker.return_to(&pool);
        let batch = pool.take().expect("returned");
        assert_eq!(batch.len(), 1);
        assert!(batch[0].retry.is_none());
        assert_eq!(batch[0].task.image_key, "");
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let pool = JobPool::new(2 * BATCH);
        for _ in 0..5 {
            pool.give((0..BATCH).map(|_| Box::new(job("img/a.jpg"))).collect());
        }
        let mut kept = 0;
        while pool.take().is_some() {
            kept += 1;
        }
        assert_eq!(kept, 2);
    }
}
