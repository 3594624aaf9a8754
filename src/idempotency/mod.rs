//! Idempotency and persistence: one idempotency key is processed once — within
//! a run, across runs, across a crash — at a cost close to an in-memory map.
//!
//! - [`claim`]: the DashMap hot cache and the claim protocol over it.
//! - `bloom`: a Bloom filter over recorded keys, so that a truly new key never
//!   costs a store lookup.
//! - [`store`]: the [`Store`] trait (history lookup, batch commit, dead letters).
//! - [`sqlite`]: the embedded SQLite store (WAL, versioned schema; the
//!   `sqlite` feature, on by default).
//! - [`handoff`]: the bounded queue from workers to the writer.
//! - `writer`: the write-behind batcher thread that owns the write connection.
//! - `setup`: a run's idempotency state: store opening, recovery replay, Bloom
//!   seeding, and the writer over it.

pub(crate) mod bloom;
pub mod claim;
pub mod handoff;
pub(crate) mod recovery;
pub(crate) mod setup;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub(crate) mod writer;

use std::path::PathBuf;

use serde::Serialize;

use crate::setting::{self, ConfigError};
pub use claim::{Claim, ClaimTable};
#[cfg(feature = "sqlite")]
pub use sqlite::{
    tune_sqlite_process, SqliteOptions, SqliteStore, SCHEMA_VERSION, UNKNOWN_PROCESSOR,
};
pub use store::{
    DeadLetter, Durability, Pending, ProcessorRecords, RecordStatus, Recorded, Store, StoreError,
    StoreReader, StoreWriter, TaskRecord,
};

/// Settings of idempotency and persistence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreConfig {
    /// The SQLite database file (used when the engine is given no store of
    /// its own; its recovery file sits beside it).
    pub path: PathBuf,
    /// How successes are made durable.
    pub durability: Durability,
    /// Records per committed batch, at most.
    pub batch_size: usize,
    /// A batch is committed at most this long after its first record arrived.
    pub batch_ms: u64,
    /// Committed keys kept in the hot cache, at most (older ones are evicted and
    /// found again through the Bloom filter and the store).
    pub cache_capacity: usize,
    /// How long SQLite waits for a lock held by another process.
    pub busy_timeout_ms: u64,
}

impl StoreConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            durability: Durability::Batch,
            batch_size: 1024,
            batch_ms: 10,
            cache_capacity: 100_000,
            busy_timeout_ms: 5_000,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad setting (it converts into
    /// [`Error::Config`](crate::Error::Config)).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(ConfigError::new(
                setting::STORE_BATCH_SIZE,
                format!("must be between 1 and 1000000, got {}", self.batch_size),
            ));
        }
        if self.batch_ms > 60_000 {
            return Err(ConfigError::new(
                setting::STORE_BATCH_MS,
                format!("must be at most 60000, got {}", self.batch_ms),
            ));
        }
        if self.cache_capacity == 0 {
            return Err(ConfigError::new(
                setting::STORE_CACHE_CAPACITY,
                "must be at least 1, got 0",
            ));
        }
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::new(setting::STORE_PATH, "must not be empty"));
        }
        Ok(())
    }

    /// The SQLite options these settings give.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_options(&self) -> SqliteOptions {
        SqliteOptions {
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout_ms),
            durability: self.durability,
            ..SqliteOptions::default()
        }
    }
}
