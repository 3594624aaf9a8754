//! The scheduler: producer lanes, a global injector, one local deque per worker,
//! work stealing, parking, and pinning.
//!
//! Each [`Submitter`](crate::Submitter) owns a *lane*: a `crossbeam-deque`
//! FIFO it alone pushes to (a plain store, no compare-and-swap, no allocation
//! per task), which workers steal from in batches. The global [`Injector`] takes
//! what has no lane: tasks re-injected by the retry queue.
//!
//! A dropped submitter's lane that still holds tasks stays in the list until
//! workers have emptied it (idle workers reap emptied lanes).
//!
//! A worker takes work in this order: its own deque (FIFO); a batch (up to 32)
//! from the injector (retries that are due, admitted before anything still in
//! a lane), then from a producer lane, the rest landing in its deque; a batch
//! from a sibling's deque. Lanes and siblings are visited in a random
//! rotation. When all are empty it releases the admission slots it holds, spins
//! with [`Backoff`](crate::sync::Backoff), then parks ([`sleep`]). Whoever
//! publishes work calls [`Sleep::notify_one`](sleep::Sleep::notify_one)
//! afterwards, so a parked pool always wakes.

pub(crate) mod pin;
pub(crate) mod sleep;
pub(crate) mod worker;

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::deque::{Injector, Steal, Stealer, Worker};
use crate::sync::{lock, CachePadded, Mutex};
use sleep::Sleep;

/// Shared queues and the parking lot.
pub struct Scheduler<T> {
    injector: Injector<T>,
    /// Stealers of the workers' deques, by worker index.
    stealers: Box<[Stealer<T>]>,
    /// Stealers of the live producer lanes, with their ids.
    lanes: Mutex<LaneList<T>>,
    /// Bumped whenever `lanes` changes. Written under the `lanes` lock, read by
    /// workers to know when their cached copy is stale.
    lanes_version: CachePadded<AtomicUsize>,
    /// Closed lanes waiting to be reaped. Written under the `lanes` lock, read
    /// by idle workers to skip the lock when there is nothing to reap.
    closed_pending: AtomicUsize,
    pub(crate) sleep: Sleep,
}

struct LaneList<T> {
    next_id: u64,
    list: Vec<(u64, Stealer<T>)>,
    /// Closed lanes that still held items, kept until workers empty them.
    retired: Vec<Lane<T>>,
}

/// A producer's own queue (see the module docs).
pub struct Lane<T> {
    id: u64,
    deque: Worker<T>,
}

/// A worker's cached copy of the lane list.
pub struct LaneView<T> {
    version: usize,
    stealers: Vec<Stealer<T>>,
}

impl<T> Default for LaneView<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> LaneView<T> {
    /// An empty view; the first [`Scheduler::find`] fills it.
    pub fn new() -> Self {
        LaneView {
            version: usize::MAX,
            stealers: Vec::new(),
        }
    }
}

/// Where a worker found its next item.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// The worker's own deque.
    Local,
    /// A producer's lane.
    Lane,
    /// The global injector.
    Injector,
    /// A sibling worker's deque (a steal).
    Sibling,
}

impl<T> Scheduler<T> {
    /// A scheduler for `workers` workers, and their local deques (index `i` goes
    /// to worker `i`).
    pub fn new(workers: usize) -> (Self, Vec<Worker<T>>) {
        let locals: Vec<Worker<T>> = (0..workers).map(|_| Worker::new_fifo()).collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        (
            Scheduler {
                injector: Injector::new(),
                stealers,
                lanes: Mutex::new(LaneList {
                    next_id: 0,
                    list: Vec::new(),
                    retired: Vec::new(),
                }),
                lanes_version: CachePadded::new(AtomicUsize::new(0)),
                closed_pending: AtomicUsize::new(0),
                sleep: Sleep::for_workers(workers),
            },
            locals,
        )
    }

    /// A new producer lane, visible to workers from now on.
    pub fn open_lane(&self) -> Lane<T> {
        let deque = Worker::new_fifo();
        let mut lanes = lock(&self.lanes);
        let id = lanes.next_id;
        lanes.next_id += 1;
        lanes.list.push((id, deque.stealer()));
        self.lanes_version.fetch_add(1, Release);
        Lane { id, deque }
    }

    /// Closes a lane. An empty lane leaves the list at once; a lane still
    /// holding items stays visible to workers (its owner's end is kept here)
    /// until they have emptied it, so nothing in it is lost or copied.
    pub fn close_lane(&self, lane: Lane<T>) {
        let mut lanes = lock(&self.lanes);
        if lane.deque.is_empty() {
            Self::forget(&mut lanes.list, lane.id);
            self.lanes_version.fetch_add(1, Release);
        } else {
            lanes.retired.push(lane);
            self.closed_pending.fetch_add(1, Release);
        }
    }

    /// Drops the closed lanes that workers have emptied.
    pub fn reap_closed_lanes(&self) {
        if self.closed_pending.load(Acquire) == 0 {
            return;
        }
        let mut lanes = lock(&self.lanes);
        let before = lanes.retired.len();
        let LaneList { list, retired, .. } = &mut *lanes;
        retired.retain(|l| !l.deque.is_empty() || !Self::forget(list, l.id));
        let reaped = before - lanes.retired.len();
        if reaped > 0 {
            self.closed_pending.fetch_sub(reaped, Release);
            self.lanes_version.fetch_add(1, Release);
        }
    }

    /// Removes lane `id` from `list`; always true (for use in `retain`).
    fn forget(list: &mut Vec<(u64, Stealer<T>)>, id: u64) -> bool {
        list.retain(|(lane, _)| *lane != id);
        true
    }

    /// Closed lanes not yet emptied.
    #[cfg(all(test, not(feature = "loom")))]
    fn closed_lanes(&self) -> usize {
        lock(&self.lanes).retired.len()
    }

    /// Publishes an item on a lane and wakes a parked worker if there is one.
    #[inline]
    pub fn push_lane(&self, lane: &Lane<T>, item: T) {
        lane.deque.push(item);
        self.sleep.notify_one();
    }

    /// Publishes several items on a lane, then wakes a parked worker once.
    #[inline]
    pub fn push_lane_all(&self, lane: &Lane<T>, items: impl Iterator<Item = T>) {
        /// Wakes a worker when dropped: also if `items` panics part-way, what
        /// was pushed before is published.
        struct Notify<'a, T>(&'a Scheduler<T>);
        impl<T> Drop for Notify<'_, T> {
            fn drop(&mut self) {
                self.0.sleep.notify_one();
            }
        }
        let _notify = Notify(self);
        for item in items {
            lane.deque.push(item);
        }
    }

    /// Publishes an item on the injector and wakes a parked worker if there is one.
    pub fn push(&self, item: T) {
        self.injector.push(item);
        self.sleep.notify_one();
    }

    /// True if any queue holds an item (`SeqCst` reads; used in sleep re-checks).
    pub fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self.stealers.iter().any(|s| !s.is_empty())
            || lock(&self.lanes).list.iter().any(|(_, s)| !s.is_empty())
    }

    fn refresh(&self, view: &mut LaneView<T>) {
        let version = self.lanes_version.load(Acquire);
        if version != view.version {
            let lanes = lock(&self.lanes);
            view.stealers.clear();
            view.stealers
                .extend(lanes.list.iter().map(|(_, s)| s.clone()));
            view.version = self.lanes_version.load(Acquire);
        }
    }

    /// The next item for worker `index`, which owns `local`.
    ///
    /// `rng` is the worker's random state, used to rotate the victim order;
    /// `view` its cached lane list.
    pub fn find(
        &self,
        index: usize,
        local: &Worker<T>,
        rng: &mut u64,
        view: &mut LaneView<T>,
    ) -> Option<(T, Source)> {
        if let Some(item) = local.pop() {
            return Some((item, Source::Local));
        }
        // The injector before the lanes: it holds tasks whose retry is due,
        // admitted earlier than anything still in a lane. Taking them first
        // bounds their wait by one local batch instead of the whole backlog,
        // and starts a chain of retries (each one backoff long) as early as
        // possible.
        if let Some(item) = steal_from(|| self.injector.steal_batch_and_pop(local)) {
            self.share_surplus(local);
            return Some((item, Source::Injector));
        }
        let r = xorshift(rng);
        self.refresh(view);
        let n = view.stealers.len();
        for k in 0..n {
            let lane = &view.stealers[(r as usize + k) % n];
            if let Some(item) = steal_from(|| lane.steal_batch_and_pop(local)) {
                self.share_surplus(local);
                return Some((item, Source::Lane));
            }
        }
        let n = self.stealers.len();
        for k in 0..n {
            let victim = (r as usize + k) % n;
            if victim == index {
                continue;
            }
            if let Some(item) = steal_from(|| self.stealers[victim].steal_batch_and_pop(local)) {
                return Some((item, Source::Sibling));
            }
        }
        None
    }

    /// After a batch steal: if more than one item came over and a sibling is
    /// parked, wake it so it can steal from us.
    #[inline]
    fn share_surplus(&self, local: &Worker<T>) {
        if !local.is_empty() && self.sleep.sleepers() > 0 {
            self.sleep.notify_one();
        }
    }
}

fn steal_from<T>(mut steal: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match steal() {
            Steal::Success(item) => return Some(item),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

#[inline]
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    #[test]
    fn lanes_injector_and_siblings_all_drain() {
        let (s, locals) = Scheduler::<u32>::new(2);
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        let mut views = [LaneView::new(), LaneView::new()];
        assert!(s.find(0, &locals[0], &mut rng, &mut views[0]).is_none());
        assert!(!s.has_work());
        let lane = s.open_lane();
        for i in 0..10 {
            s.push_lane(&lane, i);
        }
        s.push(100);
        assert!(s.has_work());
        // The injector (retries that are due) goes before the lanes.
        let (first, src) = s.find(1, &locals[1], &mut rng, &mut views[1]).unwrap();
        assert_eq!((first, src), (100, Source::Injector));
        // Worker 1 takes a batch from the lane; the rest of it sits in its
        // deque, where worker 0 steals it once the lane is empty.
        let (second, src) = s.find(1, &locals[1], &mut rng, &mut views[1]).unwrap();
        assert_eq!((second, src), (0, Source::Lane));
        let mut seen = vec![first, second];
        let mut sources = vec![];
        while let Some((item, src)) = s.find(0, &locals[0], &mut rng, &mut views[0]) {
            seen.push(item);
            sources.push(src);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..10).chain([100]).collect::<Vec<_>>());
        assert!(sources.contains(&Source::Sibling), "{sources:?}");
        s.close_lane(lane);
    }

    #[test]
    fn closing_a_lane_keeps_its_items() {
        let (s, locals) = Scheduler::<u32>::new(1);
        let lane = s.open_lane();
        s.push_lane_all(&lane, 0..5);
        s.close_lane(lane);
        assert!(s.has_work());
        assert_eq!(s.closed_lanes(), 1);
        let (mut rng, mut view) = (1, LaneView::new());
        let mut seen = vec![];
        while let Some((item, _)) = s.find(0, &locals[0], &mut rng, &mut view) {
            seen.push(item);
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        s.reap_closed_lanes();
        assert_eq!(s.closed_lanes(), 0);
        assert!(!s.has_work());
    }
}
