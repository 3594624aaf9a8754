//! Drain (promises 2 and 6): after `Engine::shutdown` returns, every admitted
//! task was processed exactly once, the report says so, and the engine holds
//! nothing.
//!
//! These models run the real `Engine` (its worker loop, admission, lanes,
//! parking, retry-timer thread and shutdown protocol) under loom, with a
//! processor that records the image key of every task it is given.

use std::sync::{Arc, Mutex};

use loom::thread;
use taskq::internals::{with_fault, Fault};
use taskq::{
    Attempt, Engine, EngineConfig, Output, PinMode, ProcessError, Processor, Report, SubmitError,
    Task,
};

use crate::check;

/// Records the image key of every task it processes; always succeeds.
#[derive(Clone, Default)]
pub(crate) struct Recording(pub(crate) Arc<Mutex<Vec<String>>>);

impl Processor for Recording {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        self.0.lock().unwrap().push(task.image_key().to_string());
        Ok(Output::default())
    }
}

/// Task number `i`.
pub(crate) fn task(i: usize) -> Task {
    Task::new(&format!("img/{i}.jpg"), "2x2".parse().unwrap()).unwrap()
}

/// The image key of task `i`.
fn key(i: usize) -> String {
    format!("img/{i}.jpg")
}

/// Starts an engine of `workers` workers and `capacity` slots (block mode, no
/// store, unpinned), with `fault` injected into its admission and parking lot.
pub(crate) fn start(
    workers: usize,
    capacity: usize,
    processor: impl Processor,
    fault: Option<Fault>,
) -> Engine {
    let config = EngineConfig {
        workers,
        capacity,
        pin: PinMode::Off,
        ..EngineConfig::default()
    };
    let start = move || Engine::start(config, processor).expect("a valid configuration");
    match fault {
        Some(f) => with_fault(f, start),
        None => start(),
    }
}

/// Checks the report of a drained engine against the keys admitted and the
/// keys the processor saw.
fn assert_drained(report: &Report, mut admitted: Vec<String>, seen: &Mutex<Vec<String>>) {
    let mut seen = seen.lock().unwrap().clone();
    admitted.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, admitted, "every admitted task processed exactly once");
    let n = admitted.len() as u64;
    let c = &report.counts;
    assert_eq!(c.admitted, n, "admitted count");
    assert_eq!(c.completed(), n, "completed count");
    assert_eq!(c.succeeded, n, "succeeded count");
    assert_eq!(report.latency_ms.count, n, "one latency sample per task");
    assert!(report.queue_depth.max <= report.queue_depth.capacity);
}

/// The main thread submits `tasks` tasks (blocking while full), then shuts
/// down; explored with at most `bound` preemptions.
fn main_thread_model(
    workers: usize,
    capacity: usize,
    tasks: usize,
    bound: usize,
    fault: Option<Fault>,
) {
    check(bound, fault, move || {
        let processor = Recording::default();
        let engine = start(workers, capacity, processor.clone(), fault);
        let progress = engine.progress_handle();
        let submitter = engine.submitter();
        for i in 0..tasks {
            submitter
                .submit(task(i))
                .expect("open engine admits in block mode");
        }
        drop(submitter);
        let report = engine.shutdown();
        assert_drained(&report, (0..tasks).map(key).collect(), &processor.0);
        let c = &report.counts;
        assert_eq!(
            c.submitted,
            c.admitted + c.rejected,
            "submitted = admitted + rejected"
        );
        assert_eq!(progress.progress().depth, 0, "depth after shutdown");
    });
}

/// One worker, capacity 1, two tasks: the second submission parks until the
/// worker releases the first slot; shutdown then drains the second.
#[test]
fn shutdown_completes_every_admitted_task() {
    main_thread_model(1, 1, 2, 2, None);
}

/// Two workers, capacity 2, two tasks: each task is taken by exactly one
/// worker, whoever finds it first (lane steal, sibling steal, or wake-up).
#[test]
fn shutdown_drains_two_workers() {
    main_thread_model(2, 2, 2, 2, None);
}

/// A close that reads the depth before closing can miss the last release:
/// nobody is told `Drained`, the parked worker is never woken, `shutdown`
/// never returns.
#[test]
#[should_panic(expected = "deadlock")]
fn split_close_hangs_shutdown() {
    main_thread_model(1, 1, 1, 2, Some(Fault::SplitClose));
}

/// A worker that parks without re-checking misses the task, or the drain.
/// (Three preemptions: the worker's idle spin yields once before it parks, and
/// the task must be published between its last look and its announcement.)
#[test]
#[should_panic(expected = "deadlock")]
fn no_recheck_hangs_shutdown() {
    main_thread_model(1, 1, 1, 3, Some(Fault::NoRecheck));
}

/// A worker that parks still counted as searching: the submission skips the
/// wake-up, the task is never run, shutdown never returns.
#[test]
#[should_panic(expected = "deadlock")]
fn stale_search_hangs_shutdown() {
    main_thread_model(1, 1, 1, 3, Some(Fault::StaleSearch));
}

/// A producer thread submits while the main thread shuts down: each
/// submission is admitted (and then processed exactly once) or refused with
/// `Closed` (and never processed), and shutdown drains whatever got in. (The
/// report is built while the producer may still be running, so it can miss a
/// refusal that has not happened yet; it cannot miss an admission, since the
/// drain waits for every admitted task.)
#[test]
fn shutdown_races_a_producer() {
    check(2, None, || {
        let processor = Recording::default();
        let engine = start(1, 1, processor.clone(), None);
        let progress = engine.progress_handle();
        let submitter = engine.submitter();
        let producer = thread::spawn(move || {
            let mut admitted = Vec::new();
            for i in 0..2 {
                match submitter.submit(task(i)) {
                    Ok(()) => admitted.push(key(i)),
                    Err(SubmitError::Closed(t)) => assert_eq!(t.image_key(), key(i).as_str()),
                    Err(e) => panic!("block mode never refuses as full: {e}"),
                }
            }
            admitted
        });
        let report = engine.shutdown();
        let admitted = producer.join().unwrap();
        assert!(report.counts.submitted <= 2);
        assert_drained(&report, admitted, &processor.0);
        assert_eq!(progress.progress().depth, 0, "depth after shutdown");
    });
}
