//! The settings of the SQLite store: durability mode, lock wait and page
//! caches.
//!
//! Invariant: the defaults are the engine's defaults (batch durability,
//! 5 s busy timeout, 32 MiB writer and 4 MiB reader caches).

use std::time::Duration;

use serde::Serialize;

/// How a success is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Records are committed in batches (WAL, `synchronous=NORMAL`); a task is
    /// reported done when its record is handed to the writer. A crash loses at
    /// most the batches not yet committed: those tasks run again on the next run
    /// of the same input (at-least-once; outputs are written atomically and
    /// deterministically, so the effect is once).
    #[default]
    Batch,
    /// A task is reported done only after the batch holding its record is
    /// committed with `synchronous=FULL` (one fsync per batch): an acknowledged
    /// task survives a crash or power loss.
    GroupCommit,
}

/// Settings of the SQLite store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SqliteOptions {
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// `synchronous` of the writer: NORMAL for batch mode, FULL for group commit.
    pub durability: Durability,
    /// Page cache of the writer connection, KiB.
    pub writer_cache_kib: i64,
    /// Page cache of each reader connection, KiB.
    pub reader_cache_kib: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            durability: Durability::Batch,
            writer_cache_kib: 32 * 1024,
            reader_cache_kib: 4 * 1024,
        }
    }
}
