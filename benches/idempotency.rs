//! Idempotency: what one key costs on each path of the claim protocol, and the
//! whole dedup workload end to end.
//!
//! - `claim/hit`: the key is `Done` in the hot cache (a duplicate of a
//!   processed key): one `ClaimTable::claim`, 100,000 done keys in the table,
//!   keys visited in a scrambled order.
//! - `claim/new_finish`: a key new to the cache, claimed and then finished
//!   (`InFlight` → `Done`): the two map operations a processed key costs. The
//!   table starts empty for every 200,000 keys and grows to that (as in a
//!   200k-key run).
//! - `claim/fingerprint`: the task fingerprint a claim compares (image key
//!   and size, hashed), computed per task by the engine.
//! - `history/miss_bloom_positive_sqlite_hit`: a key absent from the cache but
//!   recorded earlier (evicted, or a previous run): the Bloom check says
//!   "maybe", then `SqliteStore`'s reader `lookup_succeeded` finds it; over a
//!   200,000-key history, keys in a scrambled order.
//! - `history/bloom_negative`: a key absent everywhere: the Bloom filter alone
//!   answers (filter sized as the engine sizes it, 200,000 keys in it).
//! - `dedup_200k/{batch,group_commit}`: 200,000 keys with 30% duplicates
//!   through the `Engine` (2 workers, capacity 1024, one producer using
//!   `submit_iter`, `Noop` processor) into a fresh SQLite file, timed from the
//!   first submission to the return of `shutdown` (every record committed);
//!   throughput in keys. Engine start (opening the file) is not timed, as in
//!   `taskq bench --workload dedup`.
//!
//! `cargo bench --bench idempotency`; add `-- --profile-time 10` for
//! flamegraphs (see `benches/support/mod.rs`).

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taskq::idempotency::{Claim, ClaimTable, Pending, SqliteOptions, SqliteStore, Store};
use taskq::internals::Bloom;
use taskq::{Durability, Engine, EngineConfig, Noop, StoreConfig, Task};
use taskq_bench::generate::{generate_tasks, GenerateOptions, OutputFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keys in the history, in the hot cache, and in the end-to-end run.
const KEYS: usize = 200_000;

fn key(i: usize) -> String {
    format!("img/{i:06}.jpg:200x200")
}

/// `0..n` visited in a scrambled order (a stride coprime with `n`), so that
/// consecutive lookups do not share cache lines or B-tree pages.
fn scrambled(n: usize) -> Vec<usize> {
    // Odd and not a multiple of 5: coprime with the 100,000 and 200,000 used here.
    let stride = 7_919 * 13;
    (0..n).map(|i| (i * stride) % n).collect()
}

fn claims(c: &mut Criterion) {
    // SAFETY: the first group of the bench runs this before any SQLite
    // connection exists, on criterion's only thread: nothing else uses SQLite.
    // (As the `taskq` binary does first thing in `main`.)
    unsafe { taskq::idempotency::tune_sqlite_process() };
    let mut group = c.benchmark_group("claim");
    group.throughput(Throughput::Elements(1));

    let table = ClaimTable::new();
    let fp = table.fingerprint("img/x.jpg", "200x200");
    let done: Vec<String> = (0..100_000).map(key).collect();
    for k in &done {
        assert_eq!(table.claim(k, fp), Claim::New);
        table.finish(k, None);
    }
    let order = scrambled(done.len());
    group.bench_function("hit", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &done[order[i % order.len()]];
            i += 1;
            black_box(table.claim(black_box(k), fp))
        })
    });

    let fresh: Vec<String> = (0..KEYS).map(key).collect();
    group.bench_function("new_finish", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(fresh.len());
                let table = ClaimTable::new();
                let start = Instant::now();
                for k in &fresh[..n] {
                    black_box(table.claim(k, fp));
                    table.finish(k, None);
                }
                total += start.elapsed();
                left -= n;
                drop(table);
            }
            total
        })
    });

    let task = Task::new("img/000123.jpg", "200x200".parse().unwrap()).unwrap();
    group.bench_function("fingerprint", |b| {
        b.iter(|| black_box(table.task_fingerprint(black_box(&task))))
    });
    group.finish();
}

fn history(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("history.db"), SqliteOptions::default()).unwrap();
    {
        let mut writer = store.writer("bench").unwrap();
        let all: Vec<Pending> = (0..KEYS as u64).map(support::record).collect();
        for batch in all.chunks(4096) {
            writer.commit(batch).unwrap();
        }
    }
    // Sized as the engine sizes it: twice the history, at least 2^20 keys.
    let bloom = Bloom::with_capacity((KEYS as u64 * 2).max(1 << 20));
    store
        .for_each_succeeded_key("bench", &mut |k| bloom.insert(k))
        .unwrap();
    let recorded: Vec<String> = (0..KEYS).map(key).collect();
    let absent: Vec<String> = (0..KEYS).map(|i| key(i + 1_000_000)).collect();
    let false_positives = absent.iter().filter(|k| bloom.may_contain(k)).count();
    eprintln!(
        "bloom: {} KiB for {KEYS} keys, {:.2}% false positives on absent keys",
        bloom.bytes() / 1024,
        false_positives as f64 * 100.0 / KEYS as f64
    );
    let order = scrambled(KEYS);

    let mut group = c.benchmark_group("history");
    group.throughput(Throughput::Elements(1));
    let mut reader = store.reader("bench").unwrap();
    group.bench_function("miss_bloom_positive_sqlite_hit", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &recorded[order[i % KEYS]];
            i += 1;
            let found = bloom.may_contain(k) && reader.lookup_succeeded(k).unwrap().is_some();
            assert!(found);
            found
        })
    });
    group.bench_function("bloom_negative", |b| {
        let mut i = 0;
        b.iter(|| {
            let k = &absent[order[i % KEYS]];
            i += 1;
            black_box(bloom.may_contain(black_box(k)))
        })
    });
    group.finish();
}

/// One end-to-end run: returns the time from the first submission to the
/// return of `shutdown`.
fn dedup_once(tasks: Vec<Task>, durability: Durability) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        EngineConfig {
            workers: 2,
            capacity: 1024,
            store: Some(StoreConfig {
                durability,
                ..StoreConfig::new(dir.path().join("dedup.db"))
            }),
            ..EngineConfig::default()
        },
        Noop,
    )
    .unwrap();
    let submitter = engine.submitter();
    let start = Instant::now();
    submitter.submit_iter(&mut tasks.into_iter()).unwrap();
    drop(submitter);
    let report = engine.shutdown();
    let elapsed = start.elapsed();
    let dups = (KEYS as f64 * 0.3) as u64;
    assert_eq!(
        (report.counts.succeeded, report.counts.duplicates),
        (KEYS as u64 - dups, dups)
    );
    elapsed
}

fn dedup_end_to_end(c: &mut Criterion) {
    let tasks: Vec<Task> = generate_tasks(&GenerateOptions {
        count: KEYS as u64,
        format: OutputFormat::Ndjson,
        duplicates: 0.3,
        seed: 42,
    })
    .collect();
    let mut group = c.benchmark_group("dedup_200k");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.sample_size(10);
    for (name, durability) in [
        ("batch", Durability::Batch),
        ("group_commit", Durability::GroupCommit),
    ] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| dedup_once(tasks.clone(), durability))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = claims, history, dedup_end_to_end
}
criterion_main!(benches);
