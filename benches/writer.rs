//! The record writer's SQLite side: commits through `SqliteStore`'s writer,
//! and the schema and settings choices behind it, compared on scratch tables.
//!
//! - `writer_commit/{batch,group_commit}/<N>`: one transaction of `N` new
//!   succeeded records (N = 64, 256, 1024, 4096) through the store's
//!   `StoreWriter::commit` (multi-row inserts, WAL; `synchronous=NORMAL` for
//!   batch, `FULL` for group commit, so one fsync per commit there), with the
//!   store's own checkpoint thread running. Building the batch is not timed.
//! - `writer_design/<variant>`: the same kind of commit written with raw
//!   rusqlite on a table mirroring the `tasks` schema and its upsert, 1024
//!   records per transaction, a PASSIVE checkpoint every 50 ms from a second
//!   connection (as the store does). `store` is the store's configuration:
//!   `WITHOUT ROWID`, 16 KiB pages, 32 MiB cache, `synchronous=NORMAL`, 64 rows
//!   per `INSERT`. Every other variant changes one thing:
//!   `rowid_unique_index` (a rowid table: the key's unique index is a second
//!   B-tree), `cache_2MiB`, `page_4096`, `sync_full`, `single_row` (one
//!   prepared single-row `INSERT` per record), `multi_row_32`,
//!   `no_status_check` (without the status `CHECK`), `status_check_in` (schema
//!   version 1's `CHECK (status IN (...))`, which SQLite evaluates by
//!   building a 4-row ephemeral B-tree for every inserted row: code for a
//!   CHECK gets no `OP_Once`; the store's version 2 writes it as plain
//!   comparisons, `status = 'queued' OR ...`),
//!   `insert_or_fail` (`INSERT OR FAIL`: a failing row needs no statement
//!   rollback, so SQLite keeps no statement journal; the writer rolls the whole
//!   batch back on any error anyway). Keys come in
//!   generator order (`img/NNNNNN.jpg:200x200`, ascending, as a dedup run's do);
//!   `random_keys/cache_{32,2}MiB` insert scrambled keys instead, the case
//!   where the cache size matters. Each variant starts from a fresh file
//!   holding 200,000 rows (not timed).
//!
//! Elements are records. `cargo bench --bench writer`; add
//! `-- --profile-time 10` for flamegraphs (see `benches/support/mod.rs`).

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rusqlite::{Connection, ToSql};
use taskq::idempotency::{Durability, Pending, SqliteOptions, SqliteStore, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn store_commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("writer_commit");
    for (mode, durability) in [
        ("batch", Durability::Batch),
        ("group_commit", Durability::GroupCommit),
    ] {
        for n in [64u64, 256, 1024, 4096] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(
                dir.path().join("writer.db"),
                SqliteOptions {
                    durability,
                    ..SqliteOptions::default()
                },
            )
            .unwrap();
            let mut writer = store.writer("bench").unwrap();
            let mut next = 0u64;
            group.throughput(Throughput::Elements(n));
            group.bench_function(BenchmarkId::new(mode, n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let batch: Vec<Pending> = (next..next + n).map(support::record).collect();
                        next += n;
                        let start = Instant::now();
                        writer.commit(&batch).unwrap();
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

/// One scratch-table configuration.
#[derive(Clone, Copy)]
struct Design {
    without_rowid: bool,
    page_size: i64,
    cache_kib: i64,
    synchronous: &'static str,
    /// Rows per `INSERT` statement (1: a prepared single-row insert).
    rows_per_insert: usize,
    /// Scrambled key order instead of ascending.
    random_keys: bool,
    /// The schema's `CHECK (status IN (...))`.
    status_check: bool,
    /// The same check written as `status = 'queued' OR ...` (no IN list).
    status_check_or: bool,
    /// `INSERT OR FAIL` (no statement journal) instead of `INSERT` (ABORT).
    or_fail: bool,
}

/// The store's own choices.
const STORE: Design = Design {
    without_rowid: true,
    page_size: 16384,
    cache_kib: 32 * 1024,
    synchronous: "NORMAL",
    rows_per_insert: 64,
    random_keys: false,
    status_check: true,
    status_check_or: true,
    or_fail: false,
};

const BATCH: usize = 1024;
const PREFILL: u64 = 200_000;

/// The `tasks` table of the store's schema (version 2), with or without its
/// rowid and its status check, or with version 1's `IN`-list check.
fn schema(d: Design) -> String {
    format!(
        "CREATE TABLE tasks (
            idempotency_key TEXT PRIMARY KEY NOT NULL,
            id TEXT NOT NULL,
            image_key TEXT NOT NULL,
            size TEXT NOT NULL,
            status TEXT NOT NULL{},
            attempts INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            finished_at INTEGER,
            output_key TEXT,
            version INTEGER NOT NULL DEFAULT 1
        ){}",
        match (d.status_check, d.status_check_or) {
            (true, false) => " CHECK (status IN ('queued', 'running', 'succeeded', 'failed'))",
            (true, true) => {
                " CHECK (status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed')"
            }
            (false, _) => "",
        },
        if d.without_rowid {
            " WITHOUT ROWID"
        } else {
            ""
        }
    )
}

/// The store's upsert for `rows` rows (`INSERT OR FAIL` with `or_fail`).
fn insert_sql(rows: usize, or_fail: bool) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=9).map(|c| format!("?{}", r * 9 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT {}INTO tasks
            (idempotency_key, id, image_key, size, status, attempts, created_at, finished_at, output_key)
         VALUES {}
         ON CONFLICT (idempotency_key) DO UPDATE SET
            id = excluded.id, image_key = excluded.image_key, size = excluded.size,
            status = excluded.status, attempts = excluded.attempts,
            finished_at = excluded.finished_at, output_key = excluded.output_key,
            version = tasks.version + 1
         WHERE tasks.status <> 'succeeded'",
        if or_fail { "OR FAIL " } else { "" },
        values.join(", ")
    )
}

/// A row's values: key, id, image key, size, status, attempts, created_at,
/// finished_at, output_key.
struct Row {
    key: String,
    id: String,
    image_key: String,
}

fn row(n: u64, random: bool) -> Row {
    // Multiplying by an odd constant mod 2^32 permutes 0..2^32: unique keys
    // in an order unrelated to n.
    let k = if random {
        n.wrapping_mul(2_654_435_761) & 0xffff_ffff
    } else {
        n
    };
    let image_key = format!("img/{k:010}.jpg");
    Row {
        key: format!("{image_key}:200x200"),
        id: n.to_string(),
        image_key,
    }
}

struct Scratch {
    conn: Connection,
    design: Design,
    /// The full-chunk `INSERT`, built once.
    full_sql: String,
    next: u64,
    stop: Arc<AtomicBool>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new(design: Design) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("design.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", design.page_size)
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", design.synchronous)
            .unwrap();
        conn.pragma_update(None, "cache_size", -design.cache_kib)
            .unwrap();
        conn.pragma_update(None, "temp_store", "MEMORY").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch(&schema(design)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = Some(checkpoint_thread(&path, stop.clone()));
        let mut s = Scratch {
            conn,
            design,
            full_sql: insert_sql(design.rows_per_insert, design.or_fail),
            next: 0,
            stop,
            checkpointer,
            _dir: dir,
        };
        while s.next < PREFILL {
            let rows = s.next_rows();
            s.commit(&rows);
        }
        s
    }

    /// The next `BATCH` rows (new keys).
    fn next_rows(&mut self) -> Vec<Row> {
        let rows = (self.next..self.next + BATCH as u64)
            .map(|n| row(n, self.design.random_keys))
            .collect();
        self.next += BATCH as u64;
        rows
    }

    /// Inserts `rows` in one transaction.
    fn commit(&mut self, rows: &[Row]) {
        let d = self.design;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            for chunk in rows.chunks(d.rows_per_insert) {
                let mut stmt = if chunk.len() == d.rows_per_insert {
                    tx.prepare_cached(&self.full_sql).unwrap()
                } else {
                    tx.prepare_cached(&insert_sql(chunk.len(), d.or_fail))
                        .unwrap()
                };
                let mut i = 0;
                for r in chunk {
                    let values: [&dyn ToSql; 9] = [
                        &r.key,
                        &r.id,
                        &r.image_key,
                        &"200x200",
                        &"succeeded",
                        &1i64,
                        &0i64,
                        &1i64,
                        &Option::<&str>::None,
                    ];
                    for v in values {
                        i += 1;
                        stmt.raw_bind_parameter(i, v).unwrap();
                    }
                }
                stmt.raw_execute().unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
    }
}

/// A PASSIVE checkpoint every 50 ms on its own connection, as the store runs.
fn checkpoint_thread(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let conn = Connection::open(path).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    })
}

fn designs(c: &mut Criterion) {
    let variants: [(&str, Design); 12] = [
        ("store", STORE),
        (
            "rowid_unique_index",
            Design {
                without_rowid: false,
                ..STORE
            },
        ),
        (
            "cache_2MiB",
            Design {
                cache_kib: 2 * 1024,
                ..STORE
            },
        ),
        (
            "page_4096",
            Design {
                page_size: 4096,
                ..STORE
            },
        ),
        (
            "sync_full",
            Design {
                synchronous: "FULL",
                ..STORE
            },
        ),
        (
            "single_row",
            Design {
                rows_per_insert: 1,
                ..STORE
            },
        ),
        (
            "multi_row_32",
            Design {
                rows_per_insert: 32,
                ..STORE
            },
        ),
        (
            "no_status_check",
            Design {
                status_check: false,
                ..STORE
            },
        ),
        (
            "status_check_in",
            Design {
                status_check_or: false,
                ..STORE
            },
        ),
        (
            "insert_or_fail",
            Design {
                or_fail: true,
                ..STORE
            },
        ),
        (
            "random_keys/cache_32MiB",
            Design {
                random_keys: true,
                ..STORE
            },
        ),
        (
            "random_keys/cache_2MiB",
            Design {
                random_keys: true,
                cache_kib: 2 * 1024,
                ..STORE
            },
        ),
    ];
    let mut group = c.benchmark_group("writer_design");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, design) in variants {
        let mut scratch = Scratch::new(design);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rows = scratch.next_rows();
                    let start = Instant::now();
                    scratch.commit(&rows);
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = store_commits, designs
}
criterion_main!(benches);
