//! The hand-off from workers to the writer: a bounded queue with batch receive.
//!
//! # Protocol
//!
//! - Senders push items while there is room and park on `not_full` while there
//!   is none: a lagging writer slows the workers down (back-pressure) and no item
//!   is ever dropped.
//! - The receiver waits for a first item, then lingers until the batch is full
//!   or `linger` has passed since the first item arrived, whichever comes first,
//!   and takes the whole batch in one lock.
//! - Senders signal `not_empty` only when the queue goes from empty to non-empty
//!   or reaches a full batch, so a busy stream of records does not wake the
//!   writer per record.
//! - `close` wakes everyone. After it, sends fail (handing the items back) and
//!   the receiver drains what is left, then sees the end.
//!
//! All state is under one mutex; the condition variables are the only waits.
//!
//! # Model checking
//!
//! `loom_tests/handoff.rs` checks under loom that every record sent before the
//! close is received exactly once, that back-pressure never strands a sender,
//! and that `close` ends every wait. Under the `loom` feature (only) a
//! `Handoff` can carry a deliberate `sync::fault::Fault` that the models must
//! reject: a skipped `not_full` or `not_empty` notification, a record dropped
//! when the queue fills mid-send (`LoseOnFull`), or a batch handed to the
//! receiver twice (`DeliverTwice`, for a `Handoff` built with
//! `Handoff::new_cloning`, the loom-only constructor that can copy items).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[cfg(feature = "loom")]
use crate::sync::fault::{self, Fault};
use crate::sync::{lock, wait, wait_timeout, Condvar, Mutex};

struct State<T> {
    queue: VecDeque<T>,
    /// When the oldest queued item arrived.
    first_at: Option<Instant>,
    closed: bool,
    /// Loom only: `Fault::DeliverTwice` has struck (once per hand-off).
    #[cfg(feature = "loom")]
    redelivered: bool,
}

/// A bounded multi-producer, single-consumer queue with batch receive.
pub struct Handoff<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    batch: usize,
    /// A deliberate bug for the loom models ([`fault::with_fault`]); the field
    /// does not exist outside loom builds.
    #[cfg(feature = "loom")]
    fault: Option<Fault>,
    /// Loom only: copies an item, for `Fault::DeliverTwice` (set by
    /// [`Handoff::new_cloning`]).
    #[cfg(feature = "loom")]
    copy: Option<fn(&T) -> T>,
}

/// The hand-off was closed; the items that were not taken are handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub Vec<T>);

impl<T> Handoff<T> {
    /// A hand-off holding at most `capacity` items, received in batches of at
    /// most `batch`.
    pub fn new(capacity: usize, batch: usize) -> Self {
        assert!(capacity >= 1 && batch >= 1);
        Handoff {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                first_at: None,
                closed: false,
                #[cfg(feature = "loom")]
                redelivered: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            batch,
            #[cfg(feature = "loom")]
            fault: fault::injected().filter(|f| {
                matches!(
                    f,
                    Fault::SkipNotFull
                        | Fault::SkipNotEmpty
                        | Fault::LoseOnFull
                        | Fault::DeliverTwice
                )
            }),
            #[cfg(feature = "loom")]
            copy: None,
        }
    }

    /// Loom only: [`Handoff::new`], able to copy items, so that
    /// `Fault::DeliverTwice` can be injected into it.
    #[cfg(feature = "loom")]
    #[doc(hidden)]
    pub fn new_cloning(capacity: usize, batch: usize) -> Self
    where
        T: Clone,
    {
        Handoff {
            copy: Some(T::clone),
            ..Self::new(capacity, batch)
        }
    }

    /// Sends every item of `items` (draining it), waiting for room as needed.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the items not sent, if the hand-off closed.
    pub fn send_all(&self, items: &mut Vec<T>) -> Result<(), Closed<T>> {
        let mut items = items.drain(..).peekable();
        let mut st = lock(&self.state);
        while items.peek().is_some() {
            if st.closed {
                return Err(Closed(items.collect()));
            }
            if st.queue.len() >= self.capacity {
                st = wait(&self.not_full, st);
                continue;
            }
            let was_empty = st.queue.is_empty();
            // Loom only, `Fault::LoseOnFull`: the next item is taken before
            // the room is checked, and dropped when there is none.
            #[cfg(feature = "loom")]
            if self.fault == Some(Fault::LoseOnFull) {
                for item in items.by_ref() {
                    if st.queue.len() >= self.capacity {
                        break;
                    }
                    st.queue.push_back(item);
                }
            }
            while st.queue.len() < self.capacity {
                match items.next() {
                    Some(item) => st.queue.push_back(item),
                    None => break,
                }
            }
            if was_empty {
                st.first_at = Some(Instant::now());
            }
            if was_empty || st.queue.len() >= self.batch {
                // Loom only, `Fault::SkipNotEmpty`: the receiver is never woken.
                #[cfg(feature = "loom")]
                if self.fault == Some(Fault::SkipNotEmpty) {
                    continue;
                }
                self.not_empty.notify_one();
            }
        }
        Ok(())
    }

    /// Sends one item.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the item, if the hand-off closed.
    pub fn send(&self, item: T) -> Result<(), Closed<T>> {
        self.send_all(&mut vec![item])
    }

    /// Waits for a batch and moves it into `out`: returns once `out` holds a
    /// full batch, or `linger` has passed since the oldest item arrived, or the
    /// hand-off is closed. Returns false when it is closed and empty.
    pub fn recv_batch(&self, linger: Duration, out: &mut Vec<T>) -> bool {
        let mut st = lock(&self.state);
        loop {
            if st.queue.is_empty() {
                if st.closed {
                    return false;
                }
                st = wait(&self.not_empty, st);
                continue;
            }
            if st.queue.len() >= self.batch || st.closed {
                break;
            }
            let waited = st.first_at.map_or(Duration::ZERO, |t| t.elapsed());
            if waited >= linger {
                break;
            }
            st = wait_timeout(&self.not_empty, st, linger - waited);
        }
        let n = st.queue.len().min(self.batch);
        // Loom only, `Fault::DeliverTwice`: the first batch is copied out but
        // its items stay queued, so the next receive takes them again.
        #[cfg(feature = "loom")]
        if let (Some(Fault::DeliverTwice), Some(copy), false) =
            (self.fault, self.copy, st.redelivered)
        {
            st.redelivered = true;
            out.extend(st.queue.iter().take(n).map(copy));
            return true;
        }
        out.extend(st.queue.drain(..n));
        st.first_at = if st.queue.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        // Loom only, `Fault::SkipNotFull`: parked senders are never woken.
        #[cfg(feature = "loom")]
        if self.fault == Some(Fault::SkipNotFull) {
            return true;
        }
        self.not_full.notify_all();
        true
    }

    /// Stops the hand-off: senders fail from now on, the receiver drains.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn batches_by_size_and_by_time() {
        let h = Handoff::new(100, 4);
        h.send_all(&mut (0..10).collect()).unwrap();
        let mut out = vec![];
        assert!(h.recv_batch(Duration::from_secs(60), &mut out));
        assert_eq!(out, [0, 1, 2, 3], "a full batch does not wait");
        out.clear();
        h.recv_batch(Duration::from_secs(60), &mut out);
        out.clear();
        // Two left: fewer than a batch, so it lingers, then takes them.
        let start = Instant::now();
        assert!(h.recv_batch(Duration::from_millis(30), &mut out));
        assert_eq!(out, [8, 9]);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn back_pressure_then_everything_arrives_once() {
        let h = Arc::new(Handoff::new(8, 3));
        let senders: Vec<_> = (0..4)
            .map(|s| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        h.send(s * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        let receiver = {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut all = vec![];
                let mut batch = vec![];
                while h.recv_batch(Duration::from_millis(1), &mut batch) {
                    assert!(batch.len() <= 3);
                    all.append(&mut batch);
                }
                all
            })
        };
        for s in senders {
            s.join().unwrap();
        }
        h.close();
        let mut all = receiver.join().unwrap();
        all.sort_unstable();
        let mut expected: Vec<_> = (0..4)
            .flat_map(|s| (0..500).map(move |i| s * 1000 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    fn closed_hands_items_back() {
        let h = Handoff::new(2, 2);
        h.close();
        assert_eq!(h.send(5), Err(Closed(vec![5])));
        let mut out = vec![];
        assert!(!h.recv_batch(Duration::ZERO, &mut out));
    }
}
