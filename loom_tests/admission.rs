//! Admission (promise 1, and the producer half of promise 3): the bound, the
//! accounting, wake-ups of parked producers, and the single `Drained`.
//!
//! Every model drives `taskq::internals::Admission` itself. `held` counters are
//! the model's own bookkeeping (who holds a slot right now), kept in loom
//! atomics so loom orders them with the engine's operations.

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use std::sync::Arc;
use taskq::internals::{with_fault, Admission, AdmitError, Drained, Fault, ReleaseBatch};

use crate::check;

/// An `Admission` of `capacity`, with `fault` injected if any.
fn admission(capacity: usize, fault: Option<Fault>) -> Arc<Admission> {
    Arc::new(match fault {
        Some(f) => with_fault(f, || Admission::new(capacity)),
        None => Admission::new(capacity),
    })
}

/// Takes note of `k` newly held slots and checks the bound from this thread.
fn hold(a: &Admission, held: &AtomicUsize, k: usize) {
    let now = held.fetch_add(k, SeqCst) + k;
    assert!(
        now <= a.capacity(),
        "depth bound broken: {now} slots held, capacity {}",
        a.capacity()
    );
    assert!(a.depth() <= a.capacity(), "depth counter above capacity");
}

/// Capacity 2, three producers racing through both non-blocking entry points
/// (`try_acquire`, `try_acquire_many`); each checks the bound from its own
/// thread right after its acquire and keeps what it got. Once all are done the
/// counter must agree with what was handed out; then everything is released.
/// (The blocking path reserves through the same compare-and-swap; it is raced
/// in `depth_returns_to_zero` and the wake-up models.)
fn bound_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let a = admission(2, fault);
        let held = Arc::new(AtomicUsize::new(0));
        let one = {
            let (a, held) = (a.clone(), held.clone());
            thread::spawn(move || {
                if a.try_acquire().is_ok() {
                    hold(&a, &held, 1);
                }
            })
        };
        let many = {
            let (a, held) = (a.clone(), held.clone());
            thread::spawn(move || {
                if let Ok(k) = a.try_acquire_many(2) {
                    hold(&a, &held, k);
                }
            })
        };
        if a.try_acquire().is_ok() {
            hold(&a, &held, 1);
        }
        one.join().unwrap();
        many.join().unwrap();
        let held = held.load(SeqCst);
        assert_eq!(
            a.depth(),
            held,
            "depth bound broken: the counter says {} while {held} slots are held",
            a.depth()
        );
        assert_eq!(held, 2, "a slot was refused while free");
        let _ = a.release(held);
        assert_eq!(a.depth(), 0);
        assert!(a.max_depth() <= a.capacity());
    });
}

/// Promise 1: depth never exceeds capacity, checked in every thread after
/// each acquire.
#[test]
fn depth_never_exceeds_capacity() {
    bound_model(None);
}

/// A load, a check and a store instead of a CAS: two producers take the last
/// slot together.
#[test]
#[should_panic(expected = "depth bound broken")]
fn check_then_act_breaks_the_bound() {
    bound_model(Some(Fault::CheckThenAct));
}

/// Promise 1, accounting: two producers make two non-blocking attempts each
/// against capacity 2, nobody releases. Every attempt is admitted or rejected,
/// exactly `capacity` are admitted (no slot lost, none handed out twice, no
/// spurious `Full`), and the depth says so.
#[test]
fn admitted_plus_rejected_is_attempted() {
    check(3, None, || {
        let a = admission(2, None);
        let producer = |a: Arc<Admission>| {
            let (mut admitted, mut rejected) = (0, 0);
            for _ in 0..2 {
                match a.try_acquire() {
                    Ok(()) => admitted += 1,
                    Err(AdmitError::Full) => rejected += 1,
                    Err(AdmitError::Closed) => panic!("never closed"),
                }
            }
            (admitted, rejected)
        };
        let other = {
            let a = a.clone();
            thread::spawn(move || producer(a))
        };
        let (a1, r1) = producer(a.clone());
        let (a2, r2) = other.join().unwrap();
        assert_eq!(a1 + r1 + a2 + r2, 4, "an attempt went unanswered");
        assert_eq!(a1 + a2, 2, "admitted {} of 4 against capacity 2", a1 + a2);
        assert_eq!(a.depth(), a1 + a2, "depth disagrees with admissions");
    });
}

/// Depth returns to 0 once every slot is released: two producers reserve
/// chunks (`acquire_many`, blocking) against capacity 3 and give them back
/// through a `ReleaseBatch`, as workers do.
#[test]
fn depth_returns_to_zero() {
    check(3, None, || {
        let a = admission(3, None);
        let held = Arc::new(AtomicUsize::new(0));
        let producer = |a: Arc<Admission>, held: Arc<AtomicUsize>| {
            let k = a.acquire_many(2).expect("never closed");
            hold(&a, &held, k);
            held.fetch_sub(k, SeqCst);
            let mut batch = ReleaseBatch::new(2);
            for _ in 0..k {
                let _ = batch.add(&a);
            }
            let _ = batch.flush(&a);
        };
        let other = {
            let (a, held) = (a.clone(), held.clone());
            thread::spawn(move || producer(a, held))
        };
        producer(a.clone(), held);
        other.join().unwrap();
        assert_eq!(a.depth(), 0, "slots leaked");
        assert_eq!(
            a.close(),
            Some(Drained),
            "closing an empty admission drains it"
        );
    });
}

/// Capacity 1: the main thread holds the slot, a producer blocks in `acquire`,
/// the main thread releases. Loom reports a deadlock if the wake-up is lost.
fn wake_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let a = admission(1, fault);
        a.try_acquire().unwrap();
        let producer = {
            let a = a.clone();
            thread::spawn(move || {
                a.acquire().expect("never closed");
                let _ = a.release(1);
            })
        };
        let _ = a.release(1);
        producer.join().unwrap();
        assert_eq!(a.depth(), 0);
    });
}

/// Promise 3 for producers: a blocked producer is always woken when room
/// appears.
#[test]
fn blocked_producer_is_woken_by_release() {
    wake_model(None);
}

/// A release that never notifies strands the parked producer.
#[test]
#[should_panic(expected = "deadlock")]
fn skipped_notify_loses_the_wakeup() {
    wake_model(Some(Fault::SkipNotify));
}

/// Acquire/release is not enough for the `waiters`/`state` store-load pair:
/// the producer reads the old depth, the releaser reads no waiters.
#[test]
#[should_panic(expected = "deadlock")]
fn weak_ordering_loses_the_wakeup() {
    wake_model(Some(Fault::WeakOrdering));
}

/// The low-water mark: capacity 3 (mark 1), the main thread holds all three
/// slots and frees them one at a time; the parked producer is woken once the
/// depth reaches the mark, not before, and never missed.
#[test]
fn blocked_producer_is_woken_at_the_low_water_mark() {
    check(2, None, || {
        let a = admission(3, None);
        assert_eq!(a.try_acquire_many(3), Ok(3));
        let producer = {
            let a = a.clone();
            thread::spawn(move || {
                a.acquire().expect("never closed");
                let _ = a.release(1);
            })
        };
        for _ in 0..3 {
            let _ = a.release(1);
        }
        producer.join().unwrap();
        assert_eq!(a.depth(), 0);
    });
}

/// Two producers parked on a full capacity-2 admission, each woken in turn
/// (`notify_all` at the mark, the loser parks again and is woken by a later
/// release).
#[test]
fn every_blocked_producer_is_woken() {
    check(2, None, || {
        let a = admission(2, None);
        assert_eq!(a.try_acquire_many(2), Ok(2));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                thread::spawn(move || {
                    a.acquire().expect("never closed");
                    let _ = a.release(1);
                })
            })
            .collect();
        let _ = a.release(1);
        let _ = a.release(1);
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(a.depth(), 0);
    });
}

/// Capacity 4 (mark 2): the main thread holds three slots for the whole model
/// and reserves the fourth, a producer parks in `acquire`, then the main
/// thread hands the fourth back unused with `hand_back`. The depth (3) stays
/// above the mark and no task finishes, so only the hand-back can wake the
/// producer: a lost wake-up is a deadlock (the main thread joins it).
fn hand_back_model(hand_back: fn(&Admission, usize) -> Option<Drained>) {
    check(2, None, move || {
        let a = admission(4, None);
        assert_eq!(a.try_acquire_many(3), Ok(3));
        assert_eq!(a.try_acquire_many(4), Ok(1), "a chunk larger than needed");
        let producer = {
            let a = a.clone();
            thread::spawn(move || a.acquire().expect("never closed"))
        };
        assert_eq!(hand_back(&a, 1), None);
        producer.join().unwrap();
        assert_eq!(a.depth(), 4);
        assert_eq!(a.release(4), None);
        assert_eq!(a.depth(), 0);
    });
}

/// Slots reserved and not used (`Submitter::submit_iter`'s last chunk) are
/// handed back with `unreserve`, which wakes a parked producer whatever the
/// depth.
#[test]
fn unreserved_slots_wake_a_parked_producer() {
    hand_back_model(Admission::unreserve);
}

/// Handing them back with `release`, which wakes only at the low-water mark,
/// strands the producer until some task finishes; here none ever does.
#[test]
#[should_panic(expected = "deadlock")]
fn unused_slots_released_as_finished_strand_the_producer() {
    hand_back_model(Admission::release);
}

/// `close` wakes a producer blocked for room, and it gets `Closed`.
#[test]
fn close_wakes_blocked_producer_with_closed() {
    check(3, None, || {
        let a = admission(1, None);
        a.try_acquire().unwrap();
        let producer = {
            let a = a.clone();
            thread::spawn(move || a.acquire())
        };
        assert_eq!(a.close(), None, "a slot is still held");
        assert_eq!(producer.join().unwrap(), Err(AdmitError::Closed));
        assert_eq!(a.release(1), Some(Drained));
    });
}

/// Capacity 2, two slots held by two threads that release them while the main
/// thread closes; counts the `Drained` reports.
fn drained_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let a = admission(2, fault);
        assert_eq!(a.try_acquire_many(2), Ok(2));
        let drained = Arc::new(AtomicUsize::new(0));
        let releasers: Vec<_> = (0..2)
            .map(|_| {
                let (a, drained) = (a.clone(), drained.clone());
                thread::spawn(move || {
                    if a.release(1).is_some() {
                        drained.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        if a.close().is_some() {
            drained.fetch_add(1, SeqCst);
        }
        for r in releasers {
            r.join().unwrap();
        }
        assert!(a.is_drained());
        let n = drained.load(SeqCst);
        assert_eq!(n, 1, "Drained reported {n} times, expected exactly once");
    });
}

/// Promise 6's trigger: exactly one of the releases or the close is told
/// `Drained`.
#[test]
fn exactly_one_drained() {
    drained_model(None);
}

/// Reading the depth before setting `CLOSED`: the last release lands in
/// between and nobody is told.
#[test]
#[should_panic(expected = "expected exactly once")]
fn split_close_loses_the_drain() {
    drained_model(Some(Fault::SplitClose));
}
