//! The retry hand-back (promises 1, 2 and 3 for retries): a job leaving the
//! delay queue is handed back exactly once, `expire` hands back everything
//! waiting, `close` ends the timer once nothing waits, and a job waiting for
//! its retry keeps its admission slot.
//!
//! The first models drive `taskq::retry::DelayQueue` itself, its `run` loop on
//! a timer thread as in the engine. The last one runs the real `Engine`.
//!
//! Time: under loom `Condvar::wait_timeout` never times out (a plain wait,
//! woken only by a notification), while due times are real `Instant`s. So the
//! models use two kinds of due time only, both read the same way in every
//! execution: "now" (due by the time the timer looks, since the clock is
//! monotonic) and "in an hour" (never due within a model: only `expire` hands
//! it back). A due time a few milliseconds ahead would make an execution
//! depend on the wall clock.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use loom::sync::{Condvar, Mutex};
use loom::thread;
use taskq::internals::{with_fault, Fault};
use taskq::retry::DelayQueue;
use taskq::{
    Attempt, Engine, EngineConfig, Output, PinMode, ProcessError, Processor, RetryPolicy, Task,
};

use crate::check;
use crate::drain::task;

/// A `DelayQueue`, with `fault` injected if any.
fn queue(fault: Option<Fault>) -> Arc<DelayQueue<u32>> {
    Arc::new(match fault {
        Some(f) => with_fault(f, DelayQueue::new),
        None => DelayQueue::new(),
    })
}

/// What the timer thread handed back: `(item, expired)`, in order. A model
/// can wait for a number of hand-backs.
#[derive(Default)]
struct Delivered {
    items: Mutex<Vec<(u32, bool)>>,
    more: Condvar,
}

impl Delivered {
    fn push(&self, item: u32, expired: bool) {
        self.items.lock().unwrap().push((item, expired));
        self.more.notify_all();
    }

    /// Waits until `n` items were handed back.
    fn wait_for(&self, n: usize) {
        let mut items = self.items.lock().unwrap();
        while items.len() < n {
            items = self.more.wait(items).unwrap();
        }
    }

    /// Everything handed back, sorted.
    fn sorted(&self) -> Vec<(u32, bool)> {
        let mut items = self.items.lock().unwrap().clone();
        items.sort_unstable();
        items
    }
}

/// Starts the timer thread: `DelayQueue::run`, recording into `delivered`.
fn timer(q: &Arc<DelayQueue<u32>>, delivered: &Arc<Delivered>) -> thread::JoinHandle<()> {
    let (q, delivered) = (q.clone(), delivered.clone());
    thread::spawn(move || q.run(|item, expired| delivered.push(item, expired)))
}

/// Two threads push one item each, due now, while the timer thread runs; the
/// main thread waits until both came back, then closes. A push that does not
/// wake the timer parked on the empty queue leaves the main thread waiting
/// forever: deadlock.
fn hand_back_model(fault: Option<Fault>) {
    check(2, fault, move || {
        let q = queue(fault);
        let delivered = Arc::new(Delivered::default());
        let timer = timer(&q, &delivered);
        let pusher = {
            let q = q.clone();
            thread::spawn(move || q.push(1, Instant::now()))
        };
        q.push(0, Instant::now());
        delivered.wait_for(2);
        pusher.join().unwrap();
        q.close();
        timer.join().unwrap();
        assert_eq!(
            delivered.sorted(),
            [(0, false), (1, false)],
            "every item handed back exactly once, not expired"
        );
        assert!(q.is_empty());
    });
}

/// Promises 2 and 3 for retries: a due item is handed back exactly once, and
/// without waiting for anything but its push (the timer is woken).
#[test]
fn every_item_is_handed_back_once() {
    hand_back_model(None);
}

/// A push that never notifies leaves the parked timer asleep.
#[test]
#[should_panic(expected = "deadlock")]
fn skipped_push_notify_strands_the_item() {
    hand_back_model(Some(Fault::SkipPushNotify));
}

/// Promise 6 with a shutdown timeout: two items due in an hour, one pushed by
/// another thread while the main thread calls `expire`. Both come back at once
/// (the main thread waits for them before it closes), each exactly once, and
/// marked expired, whether pushed before or after the `expire`.
#[test]
fn expire_hands_back_every_waiting_item_once() {
    check(2, None, || {
        let q = queue(None);
        let delivered = Arc::new(Delivered::default());
        let timer = timer(&q, &delivered);
        let later = Instant::now() + Duration::from_secs(3600);
        let pusher = {
            let q = q.clone();
            thread::spawn(move || q.push(1, later))
        };
        q.push(0, later);
        q.expire();
        delivered.wait_for(2);
        pusher.join().unwrap();
        q.close();
        timer.join().unwrap();
        assert_eq!(
            delivered.sorted(),
            [(0, true), (1, true)],
            "every waiting item handed back exactly once, expired"
        );
    });
}

/// The main thread pushes an item due now and closes at once: the timer
/// thread still hands it back, then returns (`join` returns).
fn close_model(fault: Option<Fault>) {
    check(3, fault, move || {
        let q = queue(fault);
        let delivered = Arc::new(Delivered::default());
        let timer = timer(&q, &delivered);
        q.push(0, Instant::now());
        q.close();
        timer.join().unwrap();
        let got = delivered.sorted();
        assert_eq!(
            got,
            [(0, false)],
            "item 0 handed back {} times before the timer returned",
            got.len()
        );
        assert!(q.is_empty());
    });
}

/// Step 4: `close` ends `run`, but only once nothing waits.
#[test]
fn close_ends_run_once_empty() {
    close_model(None);
}

/// A timer that returns as soon as it sees `close` drops what still waits.
#[test]
#[should_panic(expected = "handed back 0 times")]
fn close_drops_waiting_loses_the_item() {
    close_model(Some(Fault::CloseDropsWaiting));
}

/// Fails the first attempt of task 0 transiently, succeeds everything else;
/// records `(image key, attempt number)` of every attempt.
#[derive(Clone, Default)]
struct FlakyFirst(Arc<StdMutex<Vec<(String, u32)>>>);

impl Processor for FlakyFirst {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        self.0
            .lock()
            .unwrap()
            .push((task.image_key().to_string(), attempt.number));
        if task.image_key() == "img/0.jpg" && attempt.number == 1 {
            Err(ProcessError::transient("flaky", "the first attempt fails"))
        } else {
            Ok(Output::default())
        }
    }
}

/// One worker, capacity 1, one retry with no backoff (due times must be "now",
/// see the module docs): the main thread submits task 0, whose first attempt
/// fails, then task 1, whose submission parks while task 0 holds the slot;
/// then it shuts down.
fn engine_retry_model(fault: Option<Fault>) {
    check(2, fault, move || {
        let processor = FlakyFirst::default();
        let config = EngineConfig {
            workers: 1,
            capacity: 1,
            pin: PinMode::Off,
            retry: RetryPolicy {
                max_retries: 1,
                backoff_base_ms: 0,
                backoff_max_ms: 0,
                seed: 0,
            },
            ..EngineConfig::default()
        };
        let start = {
            let processor = processor.clone();
            move || Engine::start(config, processor).expect("a valid configuration")
        };
        let engine = match fault {
            Some(f) => with_fault(f, start),
            None => start(),
        };
        let submitter = engine.submitter();
        submitter.submit(task(0)).expect("open");
        submitter.submit(task(1)).expect("open");
        drop(submitter);
        let report = engine.shutdown();
        let attempts = processor.0.lock().unwrap().clone();
        let expected = [
            ("img/0.jpg".to_string(), 1),
            ("img/0.jpg".to_string(), 2),
            ("img/1.jpg".to_string(), 1),
        ];
        assert_eq!(
            attempts, expected,
            "with capacity 1 no other task may run while task 0 waits for its retry"
        );
        let c = &report.counts;
        assert_eq!((c.admitted, c.completed(), c.succeeded), (2, 2, 2));
        assert_eq!((c.retried, c.attempts, c.failed), (1, 3, 0));
        assert_eq!(report.latency_ms.count, 2, "one latency sample per task");
        assert!(
            report.queue_depth.max <= 1,
            "depth {} above capacity 1",
            report.queue_depth.max
        );
    });
}

/// Promises 1 and 2 for retries, through the engine: a job waiting in the
/// delay queue still counts against the capacity (task 1 is not admitted
/// until task 0's retry completed), and it completes exactly once, after its
/// retry.
#[test]
fn retried_task_stays_counted_by_admission() {
    engine_retry_model(None);
}

/// In the engine, a push that never wakes the timer strands the retry: the
/// worker parks, task 1's submission waits for the slot, nothing moves.
#[test]
#[should_panic(expected = "deadlock")]
fn skipped_push_notify_hangs_the_engine() {
    engine_retry_model(Some(Fault::SkipPushNotify));
}
