//! The writer hand-off (the path of promise 5): every record sent reaches the
//! writer exactly once, back-pressure never strands a sender or the writer,
//! and `close` ends every wait.
//!
//! Every model drives `taskq::idempotency::handoff::Handoff` itself.
//!
//! Lingering: under loom `Condvar::wait_timeout` never times out (it is a
//! plain wait, woken only by a notification), so a receiver lingering for a
//! partial batch waits until the batch fills, or until `close`. The models use
//! either no linger (`Duration::ZERO`: a partial batch is taken at once, no
//! timed wait at all) or a linger of an hour, which no model outlives (so the
//! real code would not time out either: the elapsed time checks are
//! deterministic both ways).

use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use taskq::idempotency::handoff::{Closed, Handoff};
use taskq::internals::{with_fault, Fault};

use crate::check;

/// A linger no model outlives: the receiver waits for a full batch or `close`.
const LONG: Duration = Duration::from_secs(3600);

/// A hand-off of `capacity` items and batches of `batch`, with `fault`
/// injected if any. Built with `new_cloning` (`Handoff::new`, able to copy
/// its items), so that `Fault::DeliverTwice` can be injected too.
fn handoff(capacity: usize, batch: usize, fault: Option<Fault>) -> Arc<Handoff<u32>> {
    Arc::new(match fault {
        Some(f) => with_fault(f, || Handoff::new_cloning(capacity, batch)),
        None => Handoff::new_cloning(capacity, batch),
    })
}

/// The writer's loop: batches until the hand-off is closed and drained.
/// Checks every batch's size; returns everything received, in order.
fn receive_all(h: &Handoff<u32>, batch: usize, linger: Duration) -> Vec<u32> {
    let (mut all, mut got) = (Vec::new(), Vec::new());
    while h.recv_batch(linger, &mut got) {
        assert!(
            (1..=batch).contains(&got.len()),
            "a batch of {} (batch size {batch})",
            got.len()
        );
        all.append(&mut got);
    }
    all
}

/// Two senders of two records each (one `send_all` of both, two `send`s),
/// one receiver looping on `recv_batch`; the main thread closes once both
/// senders returned. Every record arrives exactly once, each sender's in order.
fn delivery_model(capacity: usize, batch: usize, linger: Duration, fault: Option<Fault>) {
    check(2, fault, move || {
        let h = handoff(capacity, batch, fault);
        let receiver = {
            let h = h.clone();
            thread::spawn(move || receive_all(&h, batch, linger))
        };
        let sender = {
            let h = h.clone();
            thread::spawn(move || {
                h.send(10).expect("open");
                h.send(11).expect("open");
            })
        };
        h.send_all(&mut vec![0, 1]).expect("open");
        sender.join().unwrap();
        h.close();
        let got = receiver.join().unwrap();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 10, 11], "every record exactly once");
        for (a, b) in [(0, 1), (10, 11)] {
            let pos = |x| got.iter().position(|&y| y == x);
            assert!(pos(a) < pos(b), "a sender's records out of order: {got:?}");
        }
    });
}

/// Capacity 1, batch 1, no linger: every record is its own batch and every
/// second send waits for room.
#[test]
fn every_record_received_once_capacity_1() {
    delivery_model(1, 1, Duration::ZERO, None);
}

/// Capacity 2, batch 2, no linger: partial batches are taken at once.
#[test]
fn every_record_received_once_batch_2() {
    delivery_model(2, 2, Duration::ZERO, None);
}

/// Capacity 2, batch 2, long linger: the receiver waits for a full batch (a
/// sender's notification at the batch mark) or for the close.
#[test]
fn every_record_received_once_lingering() {
    delivery_model(2, 2, LONG, None);
}

/// A send that takes the next record before checking for room, and drops it
/// when the queue is full: the delivery model misses it.
#[test]
#[should_panic(expected = "every record exactly once")]
fn record_lost_on_a_full_queue_is_caught() {
    delivery_model(1, 1, Duration::ZERO, Some(Fault::LoseOnFull));
}

/// A receive that copies its batch out and leaves it queued: the delivery
/// model gets those records twice.
#[test]
#[should_panic(expected = "every record exactly once")]
fn record_delivered_twice_is_caught() {
    delivery_model(2, 2, Duration::ZERO, Some(Fault::DeliverTwice));
}

/// Capacity 1: the main thread fills the hand-off, a sender parks for room,
/// the main thread receives twice. If taking a batch does not wake the
/// parked sender, the second receive waits forever: loom reports a deadlock.
fn back_pressure_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let h = handoff(1, 1, fault);
        h.send(0).unwrap();
        let sender = {
            let h = h.clone();
            thread::spawn(move || h.send(1).expect("open"))
        };
        let mut got = Vec::new();
        assert!(h.recv_batch(Duration::ZERO, &mut got));
        assert!(h.recv_batch(Duration::ZERO, &mut got));
        sender.join().unwrap();
        assert_eq!(got, [0, 1]);
    });
}

/// Back-pressure: a sender parked on a full hand-off is woken when the
/// receiver takes a batch.
#[test]
fn blocked_sender_is_woken_by_recv() {
    back_pressure_model(None);
}

/// A receive that never notifies `not_full` strands the parked sender.
#[test]
#[should_panic(expected = "deadlock")]
fn skipped_not_full_strands_the_sender() {
    back_pressure_model(Some(Fault::SkipNotFull));
}

/// Capacity 1: a receiver thread takes two records (no close), the main
/// thread sends them. If a send does not wake the receiver parked on the empty
/// hand-off, the second send waits for room forever: deadlock.
fn wake_receiver_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let h = handoff(1, 1, fault);
        let receiver = {
            let h = h.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 {
                    assert!(h.recv_batch(Duration::ZERO, &mut got), "never closed");
                }
                got
            })
        };
        h.send(0).unwrap();
        h.send(1).unwrap();
        assert_eq!(receiver.join().unwrap(), [0, 1]);
    });
}

/// The writer side of promise 3: a receiver parked on an empty hand-off is
/// woken by the send that makes it non-empty.
#[test]
fn blocked_receiver_is_woken_by_send() {
    wake_receiver_model(None);
}

/// A send that never notifies `not_empty` strands the parked receiver.
#[test]
#[should_panic(expected = "deadlock")]
fn skipped_not_empty_strands_the_receiver() {
    wake_receiver_model(Some(Fault::SkipNotEmpty));
}

/// Capacity 1, batch 2, long linger: the receiver holds out for a full batch
/// that can never come (one record fits), the sender of two records parks for
/// room, and both wait until the main thread closes. `close` wakes both: the
/// receiver takes what is queued and sees the end, the sender gets back what
/// it could not send. Every record is received or handed back, exactly once.
#[test]
fn close_wakes_blocked_sender_and_receiver() {
    check(3, None, || {
        let h = handoff(1, 2, None);
        let receiver = {
            let h = h.clone();
            thread::spawn(move || receive_all(&h, 2, LONG))
        };
        let sender = {
            let h = h.clone();
            thread::spawn(move || match h.send_all(&mut vec![0, 1]) {
                Ok(()) => panic!("one record fits and the receiver waits for two"),
                Err(Closed(back)) => back,
            })
        };
        h.close();
        let back = sender.join().unwrap();
        let got = receiver.join().unwrap();
        let mut all = [got.clone(), back.clone()].concat();
        all.sort_unstable();
        assert_eq!(
            all,
            [0, 1],
            "received {got:?} and handed back {back:?}: not each record exactly once"
        );
        assert!(h.is_empty());
    });
}
