//! Promises 1 (bound), 2 (conservation), 3 (no lost wake-up) and 7 (metrics add
//! up), through the public API with real threads.
#![cfg(not(feature = "loom"))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use taskq::{
    AdmissionMode, Attempt, Engine, EngineConfig, Output, ProcessError, Processor, SubmitError,
    Task,
};

/// Records every id it processes; optionally spins a little to let queues fill.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<String>>,
    spin: u32,
}

impl Processor for Recording {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        for _ in 0..self.spin {
            std::hint::spin_loop();
        }
        self.seen.lock().unwrap().push(task.id().to_string());
        Ok(Output::default())
    }
}

fn task(id: String) -> Task {
    Task::new(&format!("img/{id}.jpg"), "200x200".parse().unwrap())
        .unwrap()
        .with_id(id)
}

/// An engine of `workers` workers and `capacity` slots, defaults otherwise.
fn start(workers: usize, capacity: usize, processor: impl Processor) -> Engine {
    Engine::start(
        EngineConfig {
            workers,
            capacity,
            ..Default::default()
        },
        processor,
    )
    .unwrap()
}

/// Runs `producers` threads each submitting `per_producer` tasks while a sampler
/// watches the depth. Returns (report, processed ids, admitted ids, max sampled depth).
fn stress(
    capacity: usize,
    workers: usize,
    admission: AdmissionMode,
    producers: usize,
    per_producer: usize,
) -> (taskq::Report, Vec<String>, Vec<String>, usize) {
    let processor = Arc::new(Recording {
        spin: 200,
        ..Default::default()
    });
    let engine = Engine::start(
        EngineConfig {
            workers,
            capacity,
            admission,
            ..Default::default()
        },
        processor.clone(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampled_max = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, sampled_max, progress) =
            (stop.clone(), sampled_max.clone(), engine.progress_handle());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sampled_max.fetch_max(progress.progress().depth, Ordering::Relaxed);
                thread::yield_now();
            }
        })
    };
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let submitter = engine.submitter();
            thread::spawn(move || {
                let mut admitted = Vec::new();
                for i in 0..per_producer {
                    let id = format!("{p}-{i}");
                    match submitter.submit(task(id.clone())) {
                        Ok(()) => admitted.push(id),
                        Err(SubmitError::Full(t)) => {
                            assert_eq!(admission, AdmissionMode::Reject);
                            assert_eq!(t.id(), id, "the refused task is handed back");
                        }
                        Err(SubmitError::Closed(_)) => panic!("closed while producing"),
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let report = engine.shutdown();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let seen = processor.seen.lock().unwrap().clone();
    (report, seen, admitted, sampled_max.load(Ordering::Relaxed))
}

fn check_exactly_once(seen: &[String], admitted: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in seen {
        *counts.entry(id).or_default() += 1;
    }
    for id in admitted {
        assert_eq!(
            counts.remove(id.as_str()),
            Some(1),
            "task {id} must run exactly once"
        );
    }
    assert!(
        counts.is_empty(),
        "tasks ran that were never admitted: {counts:?}"
    );
}

#[test]
fn smoke_one_producer_one_worker() {
    let (report, seen, admitted, _) = stress(4, 1, AdmissionMode::Block, 1, 100);
    assert_eq!(report.counts.succeeded, 100);
    check_exactly_once(&seen, &admitted);
}

#[test]
fn block_mode_bound_and_conservation() {
    for capacity in [1, 2, 64] {
        let (report, seen, admitted, sampled) = stress(capacity, 4, AdmissionMode::Block, 16, 500);
        let c = &report.counts;
        assert_eq!(c.submitted, 16 * 500);
        assert_eq!(c.admitted, 16 * 500, "block mode admits everything");
        assert_eq!(c.rejected, 0);
        assert_eq!(c.admitted + c.rejected, c.submitted);
        assert!(
            sampled <= capacity,
            "sampled depth {sampled} > capacity {capacity}"
        );
        assert!(
            report.queue_depth.max <= capacity,
            "{:?}",
            report.queue_depth
        );
        assert_eq!(report.queue_depth.capacity, capacity);
        assert_eq!(c.succeeded, c.admitted);
        check_exactly_once(&seen, &admitted);
    }
}

#[test]
fn reject_mode_bound_and_accounting() {
    for capacity in [1, 2, 64] {
        let (report, seen, admitted, sampled) = stress(capacity, 2, AdmissionMode::Reject, 16, 500);
        let c = &report.counts;
        assert_eq!(c.submitted, 16 * 500);
        assert_eq!(c.admitted + c.rejected, c.submitted, "{c:?}");
        assert_eq!(c.admitted as usize, admitted.len());
        assert_eq!(report.rejections.full, c.rejected);
        assert!(sampled <= capacity);
        assert!(report.queue_depth.max <= capacity);
        assert_eq!(c.succeeded, c.admitted);
        check_exactly_once(&seen, &admitted);
        if capacity == 1 {
            assert!(
                c.rejected > 0,
                "16 producers against capacity 1 must see rejections"
            );
        }
    }
}

#[test]
fn try_submit_never_blocks_and_hands_the_task_back() {
    let (tx, rx) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(rx));
    struct Gated(Arc<Mutex<mpsc::Receiver<()>>>);
    impl Processor for Gated {
        fn process(&self, _: &Task, _: &Attempt) -> Result<Output, ProcessError> {
            self.0.lock().unwrap().recv().ok();
            Ok(Output::default())
        }
    }
    let engine = start(1, 2, Gated(gate));
    let s = engine.submitter();
    s.try_submit(task("a".into())).unwrap();
    s.try_submit(task("b".into())).unwrap();
    match s.try_submit(task("c".into())) {
        Err(SubmitError::Full(t)) => assert_eq!(t.id(), "c"),
        other => panic!("expected Full, got {other:?}"),
    }
    tx.send(()).unwrap();
    tx.send(()).unwrap();
    let report = engine.shutdown();
    assert_eq!(report.counts.admitted, 2);
    assert_eq!(report.counts.rejected, 1);
    assert_eq!(report.counts.submitted, 3);
}

#[test]
fn submit_after_shutdown_began_is_closed() {
    let engine = Engine::start(EngineConfig::default(), taskq::Noop).unwrap();
    let s = engine.submitter();
    engine.close();
    match s.submit(task("late".into())) {
        Err(SubmitError::Closed(t)) => assert_eq!(t.id(), "late"),
        other => panic!("expected Closed, got {other:?}"),
    }
    let report = engine.shutdown();
    assert_eq!(report.counts.rejected, 1);
    assert_eq!(report.rejections.closed, 1);
    assert_eq!(report.counts.admitted, 0);
}

#[test]
fn task_submitted_to_a_parked_pool_runs() {
    struct Signal(Mutex<mpsc::Sender<String>>);
    impl Processor for Signal {
        fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
            self.0.lock().unwrap().send(task.id().to_string()).unwrap();
            Ok(Output::default())
        }
    }
    let (tx, rx) = mpsc::channel();
    let engine = Engine::start(
        EngineConfig {
            workers: 4,
            ..Default::default()
        },
        Signal(Mutex::new(tx)),
    )
    .unwrap();
    let s = engine.submitter();
    for round in 0..20 {
        // Long enough for every worker to spin out and park.
        thread::sleep(Duration::from_millis(10));
        let id = format!("r{round}");
        s.submit(task(id.clone())).unwrap();
        // No further submission happens until this one has run: if the wake-up
        // were lost, this would time out.
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), id);
    }
    drop(s);
    assert_eq!(engine.shutdown().counts.succeeded, 20);
}

#[test]
fn metrics_add_up() {
    let (report, _, _, _) = stress(64, 4, AdmissionMode::Block, 8, 1000);
    let c = &report.counts;
    let per_worker: u64 = report.workers.iter().map(|w| w.tasks).sum();
    assert_eq!(per_worker, c.completed());
    assert_eq!(
        report.latency_ms.count,
        c.completed(),
        "one latency sample per task"
    );
    assert_eq!(
        report.service_ms.count, c.attempts,
        "one service sample per attempt"
    );
    assert_eq!(c.started, c.admitted);
    assert_eq!(c.completed(), c.admitted);
    assert!(report.latency_ms.p50 <= report.latency_ms.p99);
    assert!(report.latency_ms.p99 <= report.latency_ms.max);
    assert!(report.queue_depth.mean > 0.0 && report.queue_depth.mean <= 64.0);
    assert!(report
        .workers
        .iter()
        .all(|w| (0.0..=1.0).contains(&w.busy_ratio)));
    assert!(report.throughput_per_s > 0.0);
}

#[test]
fn panicking_processor_fails_the_task_not_the_worker() {
    struct Panicky;
    impl Processor for Panicky {
        fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
            if task.id().ends_with('3') {
                panic!("injected panic for {}", task.id());
            }
            Ok(Output::default())
        }
    }
    let engine = Engine::start(
        EngineConfig {
            workers: 1,
            ..Default::default()
        },
        Panicky,
    )
    .unwrap();
    let s = engine.submitter();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..20 {
        s.submit(task(i.to_string())).unwrap();
    }
    drop(s);
    let report = engine.shutdown();
    std::panic::set_hook(hook);
    assert_eq!(report.counts.failed, 2);
    assert_eq!(report.counts.succeeded, 18);
    assert_eq!(report.failures[0].kind, "panic");
}

#[test]
fn dropped_submitter_loses_nothing() {
    let processor = Arc::new(Recording::default());
    let engine = start(2, 10_000, processor.clone());
    let mut admitted = Vec::new();
    for round in 0..50 {
        let s = engine.submitter();
        for i in 0..100 {
            let id = format!("{round}-{i}");
            s.submit(task(id.clone())).unwrap();
            admitted.push(id);
        }
        // Dropped with tasks still in its lane.
    }
    let report = engine.shutdown();
    assert_eq!(report.counts.succeeded, 5000);
    check_exactly_once(&processor.seen.lock().unwrap(), &admitted);
}

#[test]
fn submit_iter_admits_in_chunks_within_the_bound() {
    let processor = Arc::new(Recording::default());
    let engine = start(2, 100, processor.clone());
    let ids: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let mut tasks = ids.iter().cloned().map(task);
    assert_eq!(engine.submitter().submit_iter(&mut tasks), Ok(20_000));
    let report = engine.shutdown();
    assert!(report.queue_depth.max <= 100);
    assert_eq!(report.counts.submitted, 20_000);
    check_exactly_once(&processor.seen.lock().unwrap(), &ids);
}

/// Holds every task until opened: lets a test queue a whole batch before any
/// processing (and any release of admission slots) happens.
#[derive(Default)]
struct Gated {
    open: AtomicBool,
    seen: Mutex<Vec<String>>,
}

impl Processor for Gated {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        while !self.open.load(Ordering::Acquire) {
            thread::sleep(Duration::from_micros(50));
        }
        self.seen.lock().unwrap().push(task.id().to_string());
        Ok(Output::default())
    }
}

/// `submit_iter` reserves no more slots than a sized iterator has tasks: with
/// nothing processed, the admission high-water mark is the task count, not a
/// whole chunk.
#[test]
fn submit_iter_reserves_what_a_sized_iterator_holds() {
    let processor = Arc::new(Gated::default());
    let engine = start(2, 100, processor.clone());
    let ids: Vec<String> = (0..3).map(|i| i.to_string()).collect();
    let mut tasks = ids.iter().cloned().map(task);
    assert_eq!(engine.submitter().submit_iter(&mut tasks), Ok(3));
    processor.open.store(true, Ordering::Release);
    let report = engine.shutdown();
    assert_eq!(report.queue_depth.max, 3);
    check_exactly_once(&processor.seen.lock().unwrap(), &ids);
}

/// Promise 3 with over-reservation: four producers share a capacity that
/// holds exactly all their tasks, while the processor holds every task until
/// all of them have returned (so no completion frees a slot). Their iterators
/// do not know their length, so each reserves more than it has and hands the
/// surplus back; a producer parked behind that surplus must be woken by the
/// hand-back itself. Repeated, since the race is a matter of timing; a
/// watchdog turns a stranded producer into a failure instead of a hang.
#[test]
fn slots_handed_back_by_submit_iter_wake_parked_producers() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 13;
    let (done_tx, done_rx) = mpsc::channel();
    let rounds = thread::spawn(move || {
        for round in 0..200 {
            let processor = Arc::new(Gated::default());
            let engine = start(3, PRODUCERS * EACH, processor.clone());
            let mut ids = Vec::new();
            thread::scope(|scope| {
                for p in 0..PRODUCERS {
                    let submitter = engine.submitter();
                    let mine: Vec<String> = (0..EACH).map(|i| format!("{round}-{p}-{i}")).collect();
                    ids.extend(mine.iter().cloned());
                    scope.spawn(move || {
                        let mut left = mine.into_iter();
                        // `from_fn` has no upper size bound.
                        let mut tasks = std::iter::from_fn(|| left.next().map(task));
                        assert_eq!(submitter.submit_iter(&mut tasks), Ok(EACH as u64));
                    });
                }
            });
            processor.open.store(true, Ordering::Release);
            let report = engine.shutdown();
            assert_eq!(report.counts.succeeded, (PRODUCERS * EACH) as u64);
            check_exactly_once(&processor.seen.lock().unwrap(), &ids);
        }
        done_tx.send(()).unwrap();
    });
    match done_rx.recv_timeout(Duration::from_secs(120)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("a producer stayed parked although the engine had room")
        }
        // Done, or a round failed: joining reports its panic.
        _ => rounds.join().unwrap(),
    }
}

/// A caller's iterator that panics part-way through a `submit_iter` chunk:
/// the tasks it yielded before are admitted, published and run; the rest of
/// the chunk's reserved slots are handed back, so the engine still drains and
/// the counts still add up.
#[test]
fn a_panicking_iterator_leaves_no_reserved_slot_behind() {
    let processor = Arc::new(Recording::default());
    let engine = start(2, 64, processor.clone());
    let ids: Vec<String> = (0..3).map(|i| i.to_string()).collect();
    let submitter = engine.submitter();
    let mut yielded = ids.clone().into_iter();
    // No size hint: a whole chunk (the capacity) is reserved for 3 tasks.
    let mut tasks = std::iter::from_fn(|| match yielded.next() {
        Some(id) => Some(task(id)),
        None => panic!("the caller's iterator fails"),
    });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        submitter.submit_iter(&mut tasks)
    }));
    assert!(outcome.is_err(), "the iterator's panic reaches the caller");
    drop(submitter);
    let (done_tx, done_rx) = mpsc::channel();
    let shutdown = thread::spawn(move || {
        let report = engine.shutdown();
        done_tx.send(()).unwrap();
        report
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("shutdown never drained: reserved slots were left behind");
    let report = shutdown.join().unwrap();
    assert_eq!(report.counts.submitted, 3);
    assert_eq!(report.counts.admitted, 3);
    assert_eq!(report.counts.succeeded, 3);
    check_exactly_once(&processor.seen.lock().unwrap(), &ids);
}

/// Holds the task with id `slow` until released; counts the others.
struct HoldsSlow {
    release_slow: AtomicBool,
    others_done: AtomicUsize,
}

impl Processor for HoldsSlow {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        if task.id() == "slow" {
            while !self.release_slow.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(1));
            }
        } else {
            self.others_done.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Output::default())
    }
}

/// A worker that has just run a short job takes its next job ahead of time
/// (`scheduler::worker`), but the job after a short one can be long, and then
/// the job taken ahead waits for it. That must stay one job per worker: one
/// chunk of tasks, a short one, a long one, then short ones, on two workers.
/// While the long one is held, the other worker runs every short task but at
/// most one, whichever worker got which. (A liveness check with a generous
/// limit, not a timing.)
#[test]
fn a_job_taken_ahead_waits_behind_one_job_at_most() {
    let ids = ["fast", "slow", "a", "b", "c", "d", "e", "f"];
    // Everything but `slow`, less the one job its worker may hold.
    let must_run = ids.len() - 2;
    for round in 0..50 {
        let processor = Arc::new(HoldsSlow {
            release_slow: AtomicBool::new(false),
            others_done: AtomicUsize::new(0),
        });
        let engine = start(2, 64, processor.clone());
        let mut tasks = ids
            .into_iter()
            .map(|id| task(format!("{round}-{id}")).with_id(id));
        assert_eq!(
            engine.submitter().submit_iter(&mut tasks),
            Ok(ids.len() as u64)
        );
        let waited = std::time::Instant::now();
        while processor.others_done.load(Ordering::Acquire) < must_run {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "round {round}: only {} of {must_run} tasks ran while `slow` was held",
                processor.others_done.load(Ordering::Acquire)
            );
            thread::sleep(Duration::from_millis(1));
        }
        processor.release_slow.store(true, Ordering::Release);
        assert_eq!(engine.shutdown().counts.succeeded, ids.len() as u64);
    }
}

#[test]
fn bad_settings_are_refused_before_start() {
    for (config, needle) in [
        (
            EngineConfig {
                workers: 0,
                ..Default::default()
            },
            "workers",
        ),
        (
            EngineConfig {
                capacity: 0,
                ..Default::default()
            },
            "capacity",
        ),
        (
            EngineConfig {
                release_batch: Some(0),
                ..Default::default()
            },
            "release_batch",
        ),
    ] {
        let err = Engine::start(config, taskq::Noop)
            .err()
            .expect("must be refused");
        // The library names the field; only the command line names flags.
        assert!(
            err.to_string()
                .starts_with(&format!("invalid setting {needle}: ")),
            "{err}"
        );
    }
}

/// The live view reads the recorders the report merges: read while the
/// engine runs its counts only grow, and read after shutdown they equal the
/// report's, in both durability modes (group commit completes tasks on the
/// writer thread, whose tallies the view includes).
#[test]
fn the_live_view_ends_equal_to_the_report() {
    for durability in [taskq::Durability::Batch, taskq::Durability::GroupCommit] {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            workers: 3,
            capacity: 32,
            store: Some(taskq::StoreConfig {
                durability,
                ..taskq::StoreConfig::new(dir.path().join("t.db"))
            }),
            retry: taskq::RetryPolicy {
                max_retries: 2,
                backoff_base_ms: 1,
                backoff_max_ms: 2,
                seed: 3,
            },
            ..Default::default()
        };
        let processor = taskq::Simulated::new(taskq::SimulatedConfig {
            latency_ms: 0.0,
            transient_rate: 0.2,
            permanent_rate: 0.05,
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        let engine = Engine::start(config, processor).unwrap();
        let live = engine.progress_handle();
        let reader = {
            let live = live.clone();
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..200 {
                    let view = live.live();
                    let done = view.counts.completed();
                    assert!(done >= last, "completed went from {last} to {done}");
                    assert!(view.depth <= view.capacity);
                    last = done;
                    thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let s = engine.submitter();
        for i in 0..3000 {
            // 2500 keys: 500 repeats.
            s.submit(
                Task::new(&format!("img/{}.jpg", i % 2500), "200x200".parse().unwrap()).unwrap(),
            )
            .unwrap();
        }
        drop(s);
        reader.join().unwrap();
        let report = engine.shutdown();
        let view = live.live();
        let mut counts = report.counts.clone();
        counts.invalid = 0;
        assert_eq!(view.counts, counts, "{durability:?}");
        assert!(counts.retried > 0 && counts.dead_lettered > 0 && counts.duplicates > 0);
        assert_eq!(view.latency.len(), report.latency_ms.count);
        assert_eq!(view.service.len(), report.service_ms.count);
        assert_eq!(view.depth, 0);
        assert_eq!(view.max_depth, report.queue_depth.max);
        assert!(view.closed);
        let tasks: Vec<u64> = view.workers.iter().map(|w| w.tasks).collect();
        let reported: Vec<u64> = report.workers.iter().map(|w| w.tasks).collect();
        assert_eq!(tasks, reported);
        assert!(view.workers.iter().all(|w| !w.busy));
        assert_eq!(
            view.completed_by_writer,
            report.store.as_ref().unwrap().completed_by_writer
        );
        if durability == taskq::Durability::GroupCommit {
            assert!(view.completed_by_writer > 0);
        }
    }
}
