//! [`DelayQueue`]: where a task waits for its next attempt without holding a
//! worker.
//!
//! # Delay queue protocol
//!
//! 1. A worker whose attempt failed transiently (with retries left) computes the
//!    delay and [`DelayQueue::push`]es the task with its due time, then moves on.
//!    The task keeps its admission slot: it still counts against the capacity.
//! 2. The timer thread ([`DelayQueue::run`]) sleeps until the earliest due time
//!    (or until a push brings an earlier one, or `expire`/`close`), pops every due
//!    task and hands it back through the callback (the engine re-injects it and
//!    wakes a worker). Each task is handed back exactly once.
//! 3. [`DelayQueue::expire`] (shutdown timed out) hands back every waiting task at
//!    once, marked expired: the engine dead-letters it with kind `shutdown`.
//! 4. [`DelayQueue::close`] ends the timer thread once nothing waits.
//!
//! # Model checking
//!
//! `loom_tests/retry.rs` checks the delay queue under loom (each item handed
//! back exactly once, `expire` and `close`) and, through the real engine, that
//! a task waiting for its retry keeps its admission slot. Under the `loom`
//! feature (only) a `DelayQueue` can carry a deliberate
//! `sync::fault::Fault` (a push that never wakes the timer, a
//! close that drops waiting items) that the models must reject.
//!
//! # Memory ordering
//!
//! All of the queue's state (the heap, `expired`, `closed`) lives under one
//! `Mutex`, so every push, `expire` and `close` is ordered with the timer's
//! pops by that lock alone. `push`, `expire` and `close` notify the condvar
//! while (or right after) changing the state under the lock, and the timer
//! re-reads the state under the lock after every wake-up, so a notification
//! that finds the timer not yet waiting is not lost: the timer sees the
//! change before it waits.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, wait_timeout, Condvar, Mutex};

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap, the earliest due time must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct State<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
    expired: bool,
    closed: bool,
}

/// Tasks waiting for their next attempt, ordered by due time.
pub struct DelayQueue<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    /// A deliberate bug for the loom models ([`fault::with_fault`]); the field
    /// does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
}

impl<T> Default for DelayQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> DelayQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        DelayQueue {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                expired: false,
                closed: false,
            }),
            changed: Condvar::new(),
            #[cfg(feature = "loom")]
            fault: fault::injected()
                .filter(|f| matches!(f, Fault::SkipPushNotify | Fault::CloseDropsWaiting)),
        }
    }

    /// Step 1: parks `item` until `due`. After [`expire`](Self::expire) the item
    /// is due at once.
    pub fn push(&self, item: T, due: Instant) {
        let mut st = lock(&self.state);
        let earliest = st.heap.peek().is_none_or(|e| due < e.due);
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Entry { due, seq, item });
        // Loom only, `Fault::SkipPushNotify`: the timer thread is never woken.
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::SkipPushNotify) {
            return;
        }
        if earliest || st.expired {
            self.changed.notify_one();
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        lock(&self.state).heap.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Step 3: everything waiting (and everything pushed from now on) is handed
    /// back at once, with `expired = true`.
    pub fn expire(&self) {
        lock(&self.state).expired = true;
        self.changed.notify_all();
    }

    /// Step 4: the timer thread returns once the queue is empty.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }

    /// Step 2: the timer thread's loop. Hands each due item to `deliver`
    /// (outside the lock) with whether it was expired, until closed and empty.
    pub fn run(&self, mut deliver: impl FnMut(T, bool)) {
        let mut due = Vec::new();
        let mut st = lock(&self.state);
        loop {
            // Loom only, `Fault::CloseDropsWaiting`: a close ends the thread at
            // once, whatever still waits.
            #[cfg(feature = "loom")]
            if self.fault == Some(Fault::CloseDropsWaiting) && st.closed {
                return;
            }
            let now = Instant::now();
            while let Some(top) = st.heap.peek() {
                if st.expired || top.due <= now {
                    let e = st.heap.pop().expect("peeked");
                    due.push(e.item);
                } else {
                    break;
                }
            }
            if !due.is_empty() {
                let expired = st.expired;
                drop(st);
                for item in due.drain(..) {
                    deliver(item, expired);
                }
                st = lock(&self.state);
                continue;
            }
            match st.heap.peek() {
                None if st.closed => return,
                None => st = wait(&self.changed, st),
                Some(top) => {
                    let timeout = top.due.saturating_duration_since(now);
                    st = wait_timeout(&self.changed, st, timeout);
                }
            }
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn items_come_out_in_due_order_once() {
        let q = Arc::new(DelayQueue::new());
        let now = Instant::now();
        for (i, ms) in [30u64, 10, 20, 0].into_iter().enumerate() {
            q.push(i, now + Duration::from_millis(ms));
        }
        let q2 = q.clone();
        let timer = std::thread::spawn(move || {
            let mut out = vec![];
            q2.run(|item, expired| out.push((item, expired)));
            out
        });
        std::thread::sleep(Duration::from_millis(60));
        q.close();
        assert_eq!(
            timer.join().unwrap(),
            vec![(3, false), (1, false), (2, false), (0, false)]
        );
    }

    #[test]
    fn expire_hands_everything_back_now() {
        let q = Arc::new(DelayQueue::new());
        let far = Instant::now() + Duration::from_secs(3600);
        q.push(1, far);
        q.push(2, far);
        let q2 = q.clone();
        let timer = std::thread::spawn(move || {
            let mut out = vec![];
            q2.run(|item, expired| out.push((item, expired)));
            out
        });
        q.expire();
        q.close();
        let mut out = timer.join().unwrap();
        out.sort_unstable();
        assert_eq!(out, vec![(1, true), (2, true)]);
    }
}
