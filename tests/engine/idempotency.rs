//! Promises 4 (one key, one processing) and 5 (durability) through the public
//! API, with real SQLite files and real threads.
#![cfg(not(feature = "loom"))]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::Connection;
use taskq::{
    Attempt, Durability, Engine, EngineConfig, Outcome, Output, ProcessError, Processor,
    StoreConfig, Task,
};

/// Counts processings per key.
#[derive(Default)]
struct Counting {
    per_key: Mutex<HashMap<String, u32>>,
}

impl Processor for Counting {
    fn process(&self, task: &Task, _: &Attempt) -> Result<Output, ProcessError> {
        *self
            .per_key
            .lock()
            .unwrap()
            .entry(task.idempotency_key().to_string())
            .or_default() += 1;
        std::thread::yield_now();
        Ok(Output {
            output_key: Some(format!("variants/{}/{}", task.size(), task.image_key()).into()),
        })
    }
}

fn task(i: u32) -> Task {
    Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
        .unwrap()
        .with_id(i.to_string())
}

fn config(db: &Path, durability: Durability, cache_capacity: usize) -> EngineConfig {
    EngineConfig {
        workers: 4,
        capacity: 64,
        store: Some(StoreConfig {
            durability,
            cache_capacity,
            ..StoreConfig::new(db)
        }),
        ..Default::default()
    }
}

fn succeeded_rows(db: &Path) -> u64 {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM tasks WHERE status = 'succeeded'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// `producers` threads each submit every key of `keys`.
fn run_keys(
    config: EngineConfig,
    producers: u32,
    keys: u32,
) -> (taskq::Report, HashMap<String, u32>) {
    let processor = Arc::new(Counting::default());
    let engine = Engine::start(config, processor.clone()).unwrap();
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let s = engine.submitter();
            thread::spawn(move || {
                // Each producer walks the keys from a different offset, so that
                // the same key is submitted concurrently from several threads.
                for k in 0..keys {
                    s.submit(task((k + p * 7) % keys)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let report = engine.shutdown();
    let counts = processor.per_key.lock().unwrap().clone();
    (report, counts)
}

#[test]
fn concurrent_duplicates_are_processed_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (report, counts) = run_keys(config(&db, Durability::Batch, 100_000), 8, 500);
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|&n| n == 1), "some key ran twice");
    let c = &report.counts;
    assert_eq!(c.admitted, 8 * 500);
    assert_eq!(c.succeeded, 500);
    assert_eq!(c.duplicates, 7 * 500);
    assert_eq!(c.completed(), c.admitted);
    // Promise 5: every success is in SQLite when shutdown returns.
    assert_eq!(succeeded_rows(&db), 500);
    let store = report.store.unwrap();
    assert_eq!(store.writer.records, 500);
    assert!(store.writer.error.is_none());
}

#[test]
fn second_run_processes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (first, _) = run_keys(config(&db, Durability::Batch, 100_000), 1, 300);
    assert_eq!(first.counts.succeeded, 300);
    let (second, counts) = run_keys(config(&db, Durability::Batch, 100_000), 2, 300);
    assert!(
        counts.is_empty(),
        "nothing may be processed again: {counts:?}"
    );
    assert_eq!(second.counts.duplicates, 600);
    assert_eq!(second.counts.succeeded, 0);
    let store = second.store.unwrap();
    assert_eq!(store.history_keys, 300);
    assert!(store.lookup_hits >= 300);
}

#[test]
fn history_larger_than_the_cache_still_dedupes_within_the_cache_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let capacity = 50;
    // Within one run: 2,000 keys through a 50-entry cache, each submitted twice
    // far apart, so the second copy usually finds its key evicted.
    let processor = Arc::new(Counting::default());
    let engine =
        Engine::start(config(&db, Durability::Batch, capacity), processor.clone()).unwrap();
    let s = engine.submitter();
    for round in 0..2 {
        for k in 0..2000 {
            s.submit(task(k)).unwrap();
        }
        if round == 0 {
            // Let the first copies commit so their entries can be evicted.
            thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    drop(s);
    let report = engine.shutdown();
    let counts = processor.per_key.lock().unwrap();
    assert_eq!(counts.len(), 2000);
    assert!(counts.values().all(|&n| n == 1), "a key ran twice");
    assert_eq!(report.counts.duplicates, 2000);
    let store = report.store.unwrap();
    assert!(store.writer.evictions > 0, "the cache must have evicted");
    assert!(
        store.lookup_hits > 0,
        "evicted keys must be found in SQLite"
    );
    assert!(
        store.cache_entries <= capacity,
        "cache holds {} > {capacity}",
        store.cache_entries
    );
    drop(counts);
    // Across runs: a fresh engine with a tiny cache sees a 2,000-key history.
    let (again, counts) = run_keys(config(&db, Durability::Batch, 10), 1, 2000);
    assert!(counts.is_empty());
    assert_eq!(again.counts.duplicates, 2000);
    assert!(again.store.unwrap().cache_entries <= 10);
}

#[test]
fn batches_are_cut_by_size_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    // By size: batch size 10, a long linger: 200 records need at least 20 batches
    // and none is bigger than 10.
    let db = dir.path().join("size.db");
    let mut cfg = config(&db, Durability::Batch, 100_000);
    if let Some(s) = &mut cfg.store {
        s.batch_size = 10;
        s.batch_ms = 60_000;
    }
    let (report, _) = run_keys(cfg, 1, 200);
    let w = report.store.unwrap().writer;
    assert_eq!(w.records, 200);
    assert!(w.max_batch <= 10, "{w:?}");
    assert!(w.batches >= 20, "{w:?}");
    // By time: a huge batch size, one record, a 20 ms linger: it is committed
    // without waiting for more (shutdown would otherwise be what flushes it, so
    // check while the engine still runs).
    let db = dir.path().join("time.db");
    let mut cfg = config(&db, Durability::Batch, 100_000);
    if let Some(s) = &mut cfg.store {
        s.batch_size = 100_000;
        s.batch_ms = 20;
    }
    let engine = Engine::start(cfg, Counting::default()).unwrap();
    engine.submitter().submit(task(1)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while succeeded_rows(&db) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the linger never committed"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    engine.shutdown();
}

#[test]
fn group_commit_reports_done_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gc.db");
    let cfg = config(&db, Durability::GroupCommit, 100_000);
    let checker = Arc::new(Mutex::new(None::<Connection>));
    let missing = Arc::new(Mutex::new(Vec::<String>::new()));
    let (c2, m2) = (checker.clone(), missing.clone());
    let db2 = db.clone();
    let engine = Engine::builder(cfg)
        .observer(move |task: &Task, outcome: Outcome<'_>| {
            if let Outcome::Succeeded { .. } = outcome {
                // The moment a task is reported done, its record must already
                // be readable by another connection.
                let mut conn = c2.lock().unwrap();
                let conn = conn.get_or_insert_with(|| Connection::open(&db2).unwrap());
                let found: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM tasks WHERE idempotency_key = ?1 AND status = 'succeeded'",
                        [task.idempotency_key()],
                        |r| r.get(0),
                    )
                    .unwrap();
                if found != 1 {
                    m2.lock().unwrap().push(task.idempotency_key().to_string());
                }
            }
        })
        .start(Counting::default())
        .unwrap();
    let s = engine.submitter();
    for k in 0..300 {
        s.submit(task(k)).unwrap();
    }
    drop(s);
    let report = engine.shutdown();
    assert_eq!(report.counts.succeeded, 300);
    assert!(
        missing.lock().unwrap().is_empty(),
        "acknowledged before commit: {:?}",
        missing.lock().unwrap()
    );
    let store = report.store.unwrap();
    assert_eq!(store.completed_by_writer, 300);
    assert_eq!(report.latency_ms.count, 300);
}

#[test]
fn a_reused_key_with_other_parameters_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let engine = Engine::start(config(&db, Durability::Batch, 100), Counting::default()).unwrap();
    let s = engine.submitter();
    let a = Task::new("img/a.jpg", "200x200".parse().unwrap())
        .unwrap()
        .with_idempotency_key("order-1")
        .unwrap();
    let b = Task::new("img/b.jpg", "400x400".parse().unwrap())
        .unwrap()
        .with_idempotency_key("order-1")
        .unwrap();
    s.submit(a.clone()).unwrap();
    drop(s);
    let first = engine.shutdown();
    assert_eq!(first.counts.succeeded, 1);
    // Across runs: the history holds order-1 for img/a.jpg.
    let engine = Engine::start(config(&db, Durability::Batch, 100), Counting::default()).unwrap();
    let s = engine.submitter();
    s.submit(b).unwrap();
    s.submit(a).unwrap();
    drop(s);
    let report = engine.shutdown();
    assert_eq!(report.counts.failed, 1);
    assert_eq!(report.counts.duplicates, 1);
    assert_eq!(report.failures[0].kind, "idempotency_conflict");
}
