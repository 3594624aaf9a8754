//! The store behind idempotency: what the engine needs from durable history,
//! as a small trait, so that a shared backend (PostgreSQL, for several taskq
//! processes on several machines) can stand beside the embedded SQLite one.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::processor::ErrorClass;
use crate::task::Task;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or used.
    #[cfg(feature = "sqlite")]
    #[error("{context}: {cause}")]
    Sqlite {
        /// What was being done (names the file).
        context: String,
        /// SQLite's error (part of the message, not a separate `source`, so
        /// that `{:#}` states it once).
        cause: rusqlite::Error,
    },
    /// The file's schema is newer than this build understands.
    #[error("{path}: schema version {found} is newer than this taskq understands ({supported}); upgrade taskq or use another database file")]
    NewerSchema {
        /// The database file.
        path: String,
        /// `PRAGMA user_version` found.
        found: i64,
        /// Highest version this build can read.
        supported: i64,
    },
    /// The file is not a taskq database (other tables, or not SQLite at all).
    #[error("{path}: {message}")]
    NotTaskq {
        /// The database file.
        path: String,
        /// What was found.
        message: String,
    },
    /// The recovery file of an earlier run cannot be replayed.
    #[error(
        "{path}{}: {message}; fix or move the file, then run again (it holds records an \
         earlier run could not commit)",
        if *line > 0 { format!(":{line}") } else { String::new() }
    )]
    Recovery {
        /// The recovery file.
        path: String,
        /// The line (0: the file as a whole).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A store other than the embedded SQLite one failed.
    #[error("{context}: {cause}")]
    Backend {
        /// What was being done.
        context: String,
        /// The backend's error (part of the message).
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine was given no store, and this build has no embedded one
    /// (the `sqlite` feature is off).
    #[error("no idempotency store: give the engine one (EngineBuilder::store), or build taskq with its `sqlite` feature")]
    NoStore,
    /// The writer stopped earlier; nothing more is committed.
    #[error("the record writer stopped after an earlier error: {0}")]
    WriterStopped(String),
}

impl StoreError {
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(context: impl Into<String>, cause: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            cause,
        }
    }
}

/// How a success is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
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

impl crate::setting::Choice for Durability {
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            Durability::Batch,
            "batch",
            "Commit records in batches; a crash may re-run the last batches' tasks",
        ),
        (
            Durability::GroupCommit,
            "group-commit",
            "Report a task done only after its batch is committed with fsync",
        ),
    ];
}

/// Terminal status of a task record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Processed successfully: the key is done for good.
    Succeeded,
    /// Failed for good (its dead-letter row says why).
    Failed,
}

impl RecordStatus {
    #[cfg(feature = "sqlite")]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Succeeded => "succeeded",
            RecordStatus::Failed => "failed",
        }
    }
}

/// One row of the `tasks` table, as the writer commits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task (id, keys, size, created_at, attempts made).
    pub task: Task,
    /// Outcome.
    pub status: RecordStatus,
    /// When the last attempt ended, Unix milliseconds.
    pub finished_at: u64,
    /// Where the output went, for successes.
    pub output_key: Option<CompactString>,
}

/// One row of the `dead_letter` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The task as it was last attempted.
    pub task: Task,
    /// The processor that failed it ([`Processor::name`](crate::Processor::name));
    /// empty for a letter written before processors were recorded.
    #[serde(default)]
    pub processor: String,
    /// `transient` (retries exhausted) or `permanent`.
    pub class: ErrorClass,
    /// The processor's error kind, or `shutdown` when a pending retry was cut short.
    pub kind: String,
    /// The last error's message.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the first attempt failed, Unix milliseconds.
    pub first_failed_at: u64,
    /// When the last attempt failed, Unix milliseconds.
    pub last_failed_at: u64,
}

/// One item of a batch for the writer: a task's record and, for a task that
/// failed for good, its dead letter.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The task's record (succeeded, or failed).
    pub record: TaskRecord,
    /// The dead letter, for a task that failed for good.
    pub dead: Option<DeadLetter>,
    /// Set in group-commit mode: the task completes after the commit, with this
    /// submit timestamp (raw clock ticks).
    #[doc(hidden)]
    pub ack: Option<u64>,
}

/// What the history says about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The recorded image key and size (to detect a key reused with other parameters).
    pub image_key: CompactString,
    /// The recorded size, as text (`WxH`).
    pub size: CompactString,
    /// The recorded output.
    pub output_key: Option<CompactString>,
}

/// Succeeded records of one processor (see [`Store::other_processors`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorRecords {
    /// The processor's name (empty for records written before processors
    /// were recorded).
    pub processor: String,
    /// Its succeeded records.
    pub succeeded: u64,
}

/// Durable history of task records and dead letters, kept per processor: a
/// key is done for a processor only if that processor
/// ([`Processor::name`](crate::Processor::name)) recorded it.
///
/// The engine opens one [`StoreWriter`] (owned by the writer thread) and one
/// [`StoreReader`] per worker (for history lookups on a hot-cache miss), all
/// for the processor it runs.
pub trait Store: Send + Sync + 'static {
    /// A reader of `processor`'s records, for one worker thread.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a connection cannot be opened.
    fn reader(&self, processor: &str) -> Result<Box<dyn StoreReader>, StoreError>;

    /// The writer of `processor`'s records and dead letters (one per engine).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a connection cannot be opened.
    fn writer(&self, processor: &str) -> Result<Box<dyn StoreWriter>, StoreError>;

    /// Calls `f` with every key `processor` recorded as succeeded (to seed
    /// the Bloom filter); returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the history cannot be read.
    fn for_each_succeeded_key(
        &self,
        processor: &str,
        f: &mut dyn FnMut(&str),
    ) -> Result<u64, StoreError>;

    /// Succeeded records of processors other than `processor`, which do not
    /// count as done for it (shown in the report). The default knows none.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the history cannot be read.
    fn other_processors(&self, processor: &str) -> Result<Vec<ProcessorRecords>, StoreError> {
        let _ = processor;
        Ok(Vec::new())
    }

    /// Where records that could not be committed are saved (one JSON object
    /// per line), to be committed by the next engine started on this store.
    /// The default is none: such records are counted and reported as lost.
    fn recovery_path(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Looks keys up in the history.
pub trait StoreReader: Send {
    /// The succeeded record of `key`, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the lookup fails.
    fn lookup_succeeded(&mut self, key: &str) -> Result<Option<Recorded>, StoreError>;
}

/// Commits batches of records.
pub trait StoreWriter: Send {
    /// Commits the records and dead letters of `batch` in one transaction. A
    /// success is never overwritten; a failure may be overwritten by a later
    /// success.
    ///
    /// # Errors
    ///
    /// [`StoreError`]: nothing of the batch is committed.
    fn commit(&mut self, batch: &[Pending]) -> Result<(), StoreError>;
}
