//! Retries: the backoff policy, and the delay queue where a task waits for its
//! next attempt without holding a worker.
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

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;
use crate::processor::{mix, unit};
#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, wait_timeout, Condvar, Mutex};

/// When and how often a transiently failed task is tried again.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Backoff base, milliseconds.
    pub backoff_base_ms: u64,
    /// Backoff cap, milliseconds.
    pub backoff_max_ms: u64,
    /// Seed of the jitter draws.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_base_ms: 50,
            backoff_max_ms: 5_000,
            seed: 0,
        }
    }
}

impl RetryPolicy {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_retries > 100 {
            return Err(Error::config(
                "max-retries",
                format!("must be at most 100, got {}", self.max_retries),
            ));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(Error::config(
                "backoff-max-ms",
                format!(
                    "must be at least --backoff-base-ms ({}), got {}",
                    self.backoff_base_ms, self.backoff_max_ms
                ),
            ));
        }
        if self.backoff_max_ms > 24 * 3_600_000 {
            return Err(Error::config(
                "backoff-max-ms",
                format!("must be at most one day, got {}", self.backoff_max_ms),
            ));
        }
        Ok(())
    }

    /// Whether a task that has made `attempts` attempts may try again.
    pub fn allows_retry(&self, attempts: u32) -> bool {
        attempts <= self.max_retries
    }

    /// The upper bound of the delay after the `attempt`-th attempt failed
    /// (1-based): `min(cap, base × 2^(attempt − 1))`.
    pub fn bound(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(40);
        let ms = self
            .backoff_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms);
        Duration::from_millis(ms)
    }

    /// The delay before retrying `key` after its `attempt`-th attempt failed:
    /// full jitter, uniform in `[0, bound(attempt))`, drawn from the seed, the
    /// key and the attempt (the same inputs give the same delay).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskq::RetryPolicy;
    /// let p = RetryPolicy { backoff_base_ms: 100, backoff_max_ms: 1000, ..Default::default() };
    /// for attempt in 1..=6 {
    ///     assert!(p.delay("img/a.jpg:200x200", attempt) < p.bound(attempt));
    /// }
    /// assert_eq!(p.bound(1).as_millis(), 100);
    /// assert_eq!(p.bound(3).as_millis(), 400);
    /// assert_eq!(p.bound(9).as_millis(), 1000);
    /// ```
    pub fn delay(&self, key: &str, attempt: u32) -> Duration {
        let bound = self.bound(attempt);
        let u = unit(mix(
            self.seed ^ u64::from(attempt).wrapping_mul(0x9e37_79b9),
            key.as_bytes(),
        ));
        bound.mul_f64(u)
    }
}

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

    #[test]
    fn delays_stay_in_bounds_and_are_seeded() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff_base_ms: 10,
            backoff_max_ms: 100,
            seed: 9,
        };
        let mut distinct = std::collections::HashSet::new();
        for i in 0..2000 {
            let key = format!("img/{i}.jpg:200x200");
            for attempt in 1..=6 {
                let d = p.delay(&key, attempt);
                assert!(d < p.bound(attempt), "{d:?} >= {:?}", p.bound(attempt));
                assert_eq!(d, p.delay(&key, attempt));
                distinct.insert(d);
            }
        }
        assert!(distinct.len() > 1000, "jitter must spread delays");
        assert_eq!(p.bound(1), Duration::from_millis(10));
        assert_eq!(p.bound(4), Duration::from_millis(80));
        assert_eq!(p.bound(5), Duration::from_millis(100));
        assert!(p.allows_retry(5) && !p.allows_retry(6));
        let other = RetryPolicy {
            seed: 10,
            ..p.clone()
        };
        assert_ne!(
            (1..50).map(|a| p.delay("k", a)).collect::<Vec<_>>(),
            (1..50).map(|a| other.delay("k", a)).collect::<Vec<_>>()
        );
    }

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

    #[test]
    fn bad_policies_are_named() {
        let e = RetryPolicy {
            backoff_base_ms: 10,
            backoff_max_ms: 5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("--backoff-max-ms"), "{e}");
        let e = RetryPolicy {
            max_retries: 1000,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("--max-retries"), "{e}");
    }
}
