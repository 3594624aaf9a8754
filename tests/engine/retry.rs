//! Failure handling: classified errors, retries that never hold a worker, the
//! capacity bound over waiting retries, dead letters, and shutdown timeouts.
#![cfg(not(feature = "loom"))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use taskq::{
    Attempt, Engine, EngineConfig, ErrorClass, Outcome, Output, ProcessError, Processor,
    RetryPolicy, Simulated, SimulatedConfig, StoreConfig, Task,
};

fn task(i: u32) -> Task {
    Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
        .unwrap()
        .with_id(i.to_string())
}

fn dead_letter_rows(db: &std::path::Path) -> u64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM dead_letter", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
}

#[test]
fn seeded_faults_end_succeeded_or_dead_lettered_within_the_attempt_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let effects = dir.path().join("effects.log");
    let max_retries = 3;
    let config = EngineConfig {
        workers: 4,
        capacity: 32,
        store: Some(StoreConfig::new(&db)),
        retry: RetryPolicy {
            max_retries,
            backoff_base_ms: 1,
            backoff_max_ms: 5,
            seed: 7,
        },
        ..Default::default()
    };
    let processor = Simulated::new(SimulatedConfig {
        latency_ms: 0.0,
        transient_rate: 0.3,
        permanent_rate: 0.05,
        seed: 7,
        effects_log: Some(effects.clone()),
        ..Default::default()
    })
    .unwrap();
    let outcomes = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    let o2 = outcomes.clone();
    let engine = Engine::builder(config)
        .observer(move |t: &Task, outcome: Outcome<'_>| {
            let kind = match outcome {
                Outcome::Succeeded { .. } => "succeeded",
                Outcome::DeadLettered { .. } => "dead_lettered",
                Outcome::Duplicate { .. } => "duplicate",
                Outcome::Failed { .. } => "failed",
            };
            let previous = o2
                .lock()
                .unwrap()
                .insert(t.id().to_string(), kind.to_string());
            assert!(previous.is_none(), "task {} completed twice", t.id());
        })
        .start(processor)
        .unwrap();
    let s = engine.submitter();
    let n = 2000;
    for i in 0..n {
        s.submit(task(i)).unwrap();
    }
    drop(s);
    let report = engine.shutdown();
    let c = &report.counts;
    assert_eq!(c.admitted, u64::from(n));
    assert_eq!(c.succeeded + c.dead_lettered, c.admitted, "{c:?}");
    assert_eq!(c.failed, 0);
    assert!(c.retried > 0 && c.dead_lettered > 0);
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(
        outcomes.len(),
        n as usize,
        "every task completed exactly once"
    );
    assert!(outcomes
        .values()
        .all(|k| k == "succeeded" || k == "dead_lettered"));
    // DLQ rows equal the count.
    assert_eq!(dead_letter_rows(&db), c.dead_lettered);
    // Attempts never exceed the limit: count processings per key in the effects log
    // (it records successful attempts) and the attempt numbers.
    let log = std::fs::read_to_string(&effects).unwrap();
    for line in log.lines() {
        let attempt: u32 = line.rsplit('\t').next().unwrap().parse().unwrap();
        assert!(attempt <= max_retries + 1, "attempt {attempt}");
    }
    let max_attempts: u32 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT max(attempts) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert!(max_attempts <= max_retries + 1);
    // Retries by attempt add up.
    let by_attempt: u64 = report.retries.by_attempt.values().sum();
    assert_eq!(by_attempt, c.retried);
    assert!(report
        .failures
        .iter()
        .any(|f| f.class == ErrorClass::Permanent && f.kind == "bad_source"));
}

/// Fails the first attempt of the task whose id is "slow-retry", logs order.
struct FirstFails {
    log: Mutex<Vec<String>>,
    failed: Mutex<Option<mpsc::Sender<()>>>,
}

impl Processor for FirstFails {
    fn process(&self, task: &Task, attempt: &Attempt) -> Result<Output, ProcessError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}#{}", task.id(), attempt.number));
        if task.id() == "a" && attempt.number == 1 {
            if let Some(tx) = self.failed.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
            return Err(ProcessError::transient(
                "unavailable",
                "first attempt fails",
            ));
        }
        Ok(Output::default())
    }
}

#[test]
fn a_worker_is_free_while_a_task_waits_for_its_retry() {
    let policy = RetryPolicy {
        max_retries: 1,
        backoff_base_ms: 2_000,
        backoff_max_ms: 2_000,
        seed: 1,
    };
    // The delay is drawn from the seed and the key: make sure this one is long
    // enough that "b" cannot lose the race by chance.
    let a = task(1).with_id("a");
    assert!(policy.delay(a.idempotency_key(), 1) > Duration::from_millis(200));
    let (tx, rx) = mpsc::channel();
    let processor = Arc::new(FirstFails {
        log: Mutex::new(Vec::new()),
        failed: Mutex::new(Some(tx)),
    });
    let engine = Engine::start(
        EngineConfig {
            workers: 1,
            capacity: 4,
            retry: policy,
            ..Default::default()
        },
        processor.clone(),
    )
    .unwrap();
    let s = engine.submitter();
    s.submit(a).unwrap();
    rx.recv().unwrap();
    s.submit(task(2).with_id("b")).unwrap();
    drop(s);
    let report = engine.shutdown();
    assert_eq!(*processor.log.lock().unwrap(), ["a#1", "b#1", "a#2"]);
    assert_eq!(report.counts.retried, 1);
    assert_eq!(report.counts.succeeded, 2);
    assert!(report.retries.wait_s > 0.0);
}

/// Always fails transiently; tracks how many tasks it sees at once.
struct AlwaysTransient;
impl Processor for AlwaysTransient {
    fn process(&self, _: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        Err(ProcessError::transient("unavailable", "always"))
    }
}

#[test]
fn the_bound_holds_with_many_tasks_waiting_to_retry() {
    let capacity = 4;
    let engine = Engine::start(
        EngineConfig {
            workers: 2,
            capacity,
            retry: RetryPolicy {
                max_retries: 3,
                backoff_base_ms: 5,
                backoff_max_ms: 20,
                seed: 3,
            },
            ..Default::default()
        },
        AlwaysTransient,
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, max_seen, p) = (stop.clone(), max_seen.clone(), engine.progress_handle());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max_seen.fetch_max(p.progress().depth, Ordering::Relaxed);
                thread::yield_now();
            }
        })
    };
    let producers: Vec<_> = (0..8)
        .map(|p| {
            let s = engine.submitter();
            thread::spawn(move || {
                for i in 0..25 {
                    s.submit(task(p * 100 + i)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let report = engine.shutdown();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(max_seen.load(Ordering::Relaxed) <= capacity);
    assert!(report.queue_depth.max <= capacity);
    let c = &report.counts;
    assert_eq!(c.admitted, 200);
    assert_eq!(c.failed, 200, "no store: exhausted retries fail");
    assert_eq!(c.retried, 600, "three retries each");
    assert_eq!(c.attempts, 800);
}

#[test]
fn task_timeout_is_a_transient_failure() {
    struct Slow;
    impl Processor for Slow {
        fn process(&self, _: &Task, _: &Attempt) -> Result<Output, ProcessError> {
            thread::sleep(Duration::from_millis(30));
            Ok(Output::default())
        }
    }
    let engine = Engine::start(
        EngineConfig {
            workers: 1,
            task_timeout_ms: Some(5),
            retry: RetryPolicy {
                max_retries: 1,
                backoff_base_ms: 1,
                backoff_max_ms: 1,
                seed: 0,
            },
            ..Default::default()
        },
        Slow,
    )
    .unwrap();
    engine.submitter().submit(task(1)).unwrap();
    let report = engine.shutdown();
    assert_eq!(report.counts.attempts, 2);
    assert_eq!(report.counts.failed, 1);
    assert_eq!(report.failures[0].kind, "timeout");
    assert_eq!(report.failures[0].class, ErrorClass::Transient);
}

#[test]
fn shutdown_timeout_dead_letters_pending_retries_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let engine = Engine::start(
        EngineConfig {
            workers: 2,
            capacity: 100,
            store: Some(StoreConfig::new(&db)),
            retry: RetryPolicy {
                max_retries: 5,
                backoff_base_ms: 60_000,
                backoff_max_ms: 60_000,
                seed: 0,
            },
            shutdown_timeout_ms: Some(200),
            ..Default::default()
        },
        AlwaysTransient,
    )
    .unwrap();
    let s = engine.submitter();
    for i in 0..20 {
        s.submit(task(i)).unwrap();
    }
    drop(s);
    let started = std::time::Instant::now();
    let report = engine.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "must not wait for minute-long retries"
    );
    assert_eq!(report.counts.dead_lettered, 20);
    assert_eq!(dead_letter_rows(&db), 20);
    let kinds: Vec<String> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT DISTINCT error_kind FROM dead_letter")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kinds, ["shutdown"]);
}

#[test]
fn panics_can_be_classed_transient() {
    struct PanicsOnce(AtomicBool);
    impl Processor for PanicsOnce {
        fn process(&self, _: &Task, _: &Attempt) -> Result<Output, ProcessError> {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("first call panics");
            }
            Ok(Output::default())
        }
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let engine = Engine::start(
        EngineConfig {
            workers: 1,
            panic_class: ErrorClass::Transient,
            retry: RetryPolicy {
                backoff_base_ms: 1,
                backoff_max_ms: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        PanicsOnce(AtomicBool::new(false)),
    )
    .unwrap();
    engine.submitter().submit(task(1)).unwrap();
    let report = engine.shutdown();
    std::panic::set_hook(hook);
    assert_eq!(report.counts.succeeded, 1);
    assert_eq!(report.counts.retried, 1);
    assert_eq!(report.failures[0].kind, "panic");
}
