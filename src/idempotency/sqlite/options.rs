//! The settings of the SQLite store: durability mode, lock wait and page
//! caches.
//!
//! Invariant: the defaults are the engine's defaults (batch durability,
//! 5 s busy timeout, 32 MiB writer and 4 MiB reader caches).

use std::time::Duration;

use serde::Serialize;

use crate::idempotency::store::Durability;

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
