//! The embedded store: one SQLite file in WAL mode.
//!
//! Schema version 3 (`PRAGMA user_version`):
//!
//! - `tasks`, keyed by `(processor, idempotency_key)` (`WITHOUT ROWID`: the
//!   key is the clustered index, so a lookup is one B-tree descent and an
//!   insert writes one tree instead of a table plus an index): the processor
//!   that made the record ([`Processor::name`](crate::Processor::name), with
//!   the version of its output), id, image_key, size, status
//!   (`queued`/`running`/`succeeded`/`failed`), attempts, created_at,
//!   finished_at, output_key, version (bumped on every update of a row). A
//!   key recorded by one processor is not done for another. The embedded
//!   store writes terminal states only; `queued` and `running` are there for
//!   backends shared by several processes.
//! - `dead_letter`, keyed by `(processor, idempotency_key)`: the task, error
//!   class, kind, message, attempts, first and last failure time.
//!
//! Version 2 had the same tables without `processor` (keyed by the
//! idempotency key alone); version 1 wrote its `CHECK`s as `IN` lists. Rows
//! migrated from version 2 get the processor `''` ([`UNKNOWN_PROCESSOR`]):
//! nothing says which processor made them, so they count as done for none.
//!
//! A new file is created with the schema; an older schema is migrated in one
//! transaction (the `MIGRATIONS` table below); a newer one is refused.
//! [`SqliteStore::open_read_only`] reads a file of any version up to this one
//! without migrating it or writing to it. SQL only ever takes values as bound
//! parameters.

use std::path::{Path, PathBuf};
use std::time::Duration;

use compact_str::CompactString;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::store::{
    DeadLetter, Pending, ProcessorRecords, RecordStatus, Recorded, Store, StoreError, StoreReader,
    StoreWriter,
};
use crate::processor::ErrorClass;
use crate::task::Task;

/// Turns off SQLite's process-wide memory statistics, which take a global
/// mutex on every allocation SQLite makes (the record writer makes several per
/// row). taskq reads no SQLite memory statistic. The binary calls it first
/// thing in `main`; a program using the library may do the same.
///
/// Called after SQLite was initialised (any connection opened), it changes
/// nothing: SQLite refuses configuration changes once running.
///
/// # Safety
///
/// No other thread may be using SQLite during the call (`sqlite3_config` is
/// not thread-safe): call it before spawning threads that touch SQLite.
pub unsafe fn tune_sqlite_process() {
    // SAFETY: the caller guarantees no concurrent SQLite use. The variadic
    // argument of SQLITE_CONFIG_MEMSTATUS is one C int, passed as such.
    let _ = unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int)
    };
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The processor of records written before schema version 3, which did not
/// say which processor made them.
pub const UNKNOWN_PROCESSOR: &str = "";

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "CREATE TABLE tasks (
        idempotency_key TEXT PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        output_key TEXT,
        version INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID;
    CREATE TABLE dead_letter (
        idempotency_key TEXT PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        error_class TEXT NOT NULL CHECK (error_class IN ('transient', 'permanent')),
        error_kind TEXT NOT NULL,
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_failed_at INTEGER NOT NULL,
        last_failed_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 1 -> 2: the same tables, with each CHECK written as plain comparisons.
    // SQLite evaluates `status IN ('queued', ...)` in a CHECK by building an
    // ephemeral index for every row written (PERF.md, "Idempotency and the
    // record writer": the 200k-key dedup run went from 414-433k to
    // 499-602k keys/s). Rebuilt by copying, since SQLite cannot alter a
    // constraint in place. Kept verbatim once released: a migration never
    // changes.
    "CREATE TABLE tasks_v2 (
        idempotency_key TEXT PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        status TEXT NOT NULL CHECK (
            status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed'
        ),
        attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        output_key TEXT,
        version INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID;
    INSERT INTO tasks_v2
        (idempotency_key, id, image_key, size, status, attempts, created_at, finished_at,
         output_key, version)
        SELECT idempotency_key, id, image_key, size, status, attempts, created_at, finished_at,
               output_key, version
        FROM tasks ORDER BY idempotency_key;
    DROP TABLE tasks;
    ALTER TABLE tasks_v2 RENAME TO tasks;
    CREATE TABLE dead_letter_v2 (
        idempotency_key TEXT PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        error_class TEXT NOT NULL CHECK (error_class = 'transient' OR error_class = 'permanent'),
        error_kind TEXT NOT NULL,
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_failed_at INTEGER NOT NULL,
        last_failed_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO dead_letter_v2
        (idempotency_key, id, image_key, size, created_at, error_class, error_kind, message,
         attempts, first_failed_at, last_failed_at)
        SELECT idempotency_key, id, image_key, size, created_at, error_class, error_kind, message,
               attempts, first_failed_at, last_failed_at
        FROM dead_letter ORDER BY idempotency_key;
    DROP TABLE dead_letter;
    ALTER TABLE dead_letter_v2 RENAME TO dead_letter;",
    // 2 -> 3: the processor that made a record is part of its key, so that
    // a key done by one processor (the simulated one, say) is not done for
    // another (thumbnails). Rows of earlier versions get processor '': their
    // maker is unknown, so no processor counts them as done.
    "CREATE TABLE tasks_v3 (
        processor TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        status TEXT NOT NULL CHECK (
            status = 'queued' OR status = 'running' OR status = 'succeeded' OR status = 'failed'
        ),
        attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        output_key TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (processor, idempotency_key)
    ) WITHOUT ROWID;
    INSERT INTO tasks_v3
        (processor, idempotency_key, id, image_key, size, status, attempts, created_at,
         finished_at, output_key, version)
        SELECT '', idempotency_key, id, image_key, size, status, attempts, created_at,
               finished_at, output_key, version
        FROM tasks ORDER BY idempotency_key;
    DROP TABLE tasks;
    ALTER TABLE tasks_v3 RENAME TO tasks;
    CREATE TABLE dead_letter_v3 (
        processor TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        id TEXT NOT NULL,
        image_key TEXT NOT NULL,
        size TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        error_class TEXT NOT NULL CHECK (error_class = 'transient' OR error_class = 'permanent'),
        error_kind TEXT NOT NULL,
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_failed_at INTEGER NOT NULL,
        last_failed_at INTEGER NOT NULL,
        PRIMARY KEY (processor, idempotency_key)
    ) WITHOUT ROWID;
    INSERT INTO dead_letter_v3
        (processor, idempotency_key, id, image_key, size, created_at, error_class, error_kind,
         message, attempts, first_failed_at, last_failed_at)
        SELECT '', idempotency_key, id, image_key, size, created_at, error_class, error_kind,
               message, attempts, first_failed_at, last_failed_at
        FROM dead_letter ORDER BY idempotency_key;
    DROP TABLE dead_letter;
    ALTER TABLE dead_letter_v3 RENAME TO dead_letter;",
];

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

/// A taskq database in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    /// The file's schema version: [`SCHEMA_VERSION`], or an older one for a
    /// file opened with [`open_read_only`](SqliteStore::open_read_only).
    version: i64,
    /// Opened with [`open_read_only`](SqliteStore::open_read_only): every
    /// connection is read-only, and the writing methods refuse.
    read_only: bool,
}

fn sql_err<'a>(path: &'a Path, what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    let what = what.to_string();
    move |e| {
        use rusqlite::ErrorCode as C;
        let mut context = format!("{}: {what}", path.display());
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                C::NotADatabase => {
                    return StoreError::NotTaskq {
                        path: path.display().to_string(),
                        message: "not a SQLite database (or it is corrupt or encrypted)".into(),
                    }
                }
                C::DatabaseBusy | C::DatabaseLocked => context
                    .push_str(" (another process holds its write lock; waited --busy-timeout-ms)"),
                C::ReadOnly => context.push_str(" (the file or its directory is read-only)"),
                C::DiskFull => context.push_str(" (disk full)"),
                C::DatabaseCorrupt => context.push_str(" (the file is corrupt)"),
                _ => {}
            }
        }
        StoreError::sqlite(context, e)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, checks or migrates its
    /// schema, and switches it to WAL.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotTaskq`] for a file that is not a taskq database,
    /// [`StoreError::NewerSchema`] for a newer schema, [`StoreError::Sqlite`]
    /// when the file cannot be opened, created or written (read-only path, locked).
    pub fn open(path: impl Into<PathBuf>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.into();
        create_private(&path);
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err(&path, "cannot open database"))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(sql_err(&path, "cannot set busy timeout"))?;
        // Before the first table exists (a no-op on an existing file).
        conn.pragma_update(None, "page_size", 16384)
            .map_err(sql_err(&path, "cannot set page_size"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql_err(&path, "cannot switch to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotTaskq {
                path: path.display().to_string(),
                message: format!("cannot use WAL journal mode (got {mode})"),
            });
        }
        migrate(&mut conn, &path)?;
        // Fail now, before any work, if the file cannot be written (read-only
        // file or directory, or another process holding the write lock past
        // the busy timeout).
        let read_only = conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(sql_err(&path, "cannot open database"))?;
        if read_only {
            return Err(StoreError::sqlite(
                format!(
                    "{}: cannot write to the database (the file or its directory is read-only)",
                    path.display()
                ),
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                    None,
                ),
            ));
        }
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(sql_err(&path, "cannot write to the database"))?;
        Ok(SqliteStore {
            path,
            options,
            version: SCHEMA_VERSION,
            read_only: false,
        })
    }

    /// Opens an existing database for writing, migrating an older schema (for
    /// `dlq retry` and `dlq purge`): as [`open`](Self::open), but a missing
    /// file is an error instead of a new database.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and when the file does not exist.
    pub fn open_existing(
        path: impl Into<PathBuf>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.into();
        if !path.exists() {
            return Err(no_such_database(&path));
        }
        Self::open(path, options)
    }

    /// Opens an existing database for reading only (for `dlq list`): no
    /// migration, no write, no write access needed. A file of an older schema
    /// is read as it is (its records' processor is [`UNKNOWN_PROCESSOR`]).
    /// When the file's directory cannot be written and SQLite cannot create
    /// the WAL's shared-memory file, the file is read as immutable (a
    /// snapshot that assumes no other process writes it meanwhile).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotTaskq`] for a missing file or one that is not a taskq
    /// database, [`StoreError::NewerSchema`] for a newer schema,
    /// [`StoreError::Sqlite`] when it cannot be read.
    pub fn open_read_only(
        path: impl Into<PathBuf>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.into();
        if !path.exists() {
            return Err(no_such_database(&path));
        }
        let mut store = SqliteStore {
            path,
            options,
            version: 0,
            read_only: true,
        };
        let conn = store.connect(store.options.reader_cache_kib)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql_err(&store.path, "cannot read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: store.path.display().to_string(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(StoreError::NotTaskq {
                path: store.path.display().to_string(),
                message: "not a taskq database (no schema version)".into(),
            });
        }
        store.version = version;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's schema version.
    pub fn schema_version(&self) -> i64 {
        self.version
    }

    fn connect(&self, cache_kib: i64) -> Result<Connection, StoreError> {
        let conn = if self.read_only {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&self.path, flags)
                .map_err(sql_err(&self.path, "cannot open database"))?;
            // A WAL file needs its shared-memory file; where it cannot be
            // created (a read-only directory), read the file as immutable.
            match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
                Ok(()) => conn,
                Err(_) => {
                    drop(conn);
                    let uri = immutable_uri(&self.path);
                    Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                        .map_err(sql_err(&self.path, "cannot open database"))?
                }
            }
        } else {
            Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql_err(&self.path, "cannot open database"))?
        };
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(sql_err(&self.path, "cannot set busy timeout"))?;
        conn.pragma_update(None, "cache_size", -cache_kib)
            .map_err(sql_err(&self.path, "cannot set cache_size"))?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql_err(&self.path, "cannot set temp_store"))?;
        Ok(conn)
    }

    /// A connection for one-off queries (tests, the `dlq` commands).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if it cannot be opened.
    pub fn connection(&self) -> Result<Connection, StoreError> {
        self.connect(self.options.reader_cache_kib)
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::NotTaskq {
                path: self.path.display().to_string(),
                message: format!("opened read-only: cannot {what}"),
            });
        }
        Ok(())
    }

    /// Dead letters, oldest failure first; only `key`'s when given (of every
    /// processor).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table cannot be read.
    pub fn dead_letters(&self, key: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.connection()?;
        // Files before version 3 have no processor column.
        let processor = if self.version >= 3 { "processor" } else { "''" };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT idempotency_key, id, image_key, size, created_at, error_class, error_kind,
                        message, attempts, first_failed_at, last_failed_at, {processor}
                 FROM dead_letter WHERE ?1 IS NULL OR idempotency_key = ?1
                 ORDER BY first_failed_at, idempotency_key"
            ))
            .map_err(sql_err(&self.path, "cannot read dead_letter"))?;
        let rows = stmt
            .query_map(params![key], |r| {
                let size: String = r.get(3)?;
                let class: String = r.get(5)?;
                Ok(DeadLetter {
                    task: Task {
                        idempotency_key: r.get::<_, String>(0)?.into(),
                        id: r.get::<_, String>(1)?.into(),
                        image_key: r.get::<_, String>(2)?.into(),
                        size: size.parse().map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                3,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?,
                        created_at: r.get::<_, i64>(4)? as u64,
                        attempts: r.get::<_, i64>(8)? as u32,
                    },
                    processor: r.get(11)?,
                    class: if class == "transient" {
                        ErrorClass::Transient
                    } else {
                        ErrorClass::Permanent
                    },
                    kind: r.get(6)?,
                    message: r.get(7)?,
                    attempts: r.get::<_, i64>(8)? as u32,
                    first_failed_at: r.get::<_, i64>(9)? as u64,
                    last_failed_at: r.get::<_, i64>(10)? as u64,
                })
            })
            .map_err(sql_err(&self.path, "cannot read dead_letter"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, "cannot read dead_letter"))
    }

    /// Deletes dead letters (`key`'s, or all, of every processor); returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table cannot be written.
    pub fn purge_dead_letters(&self, key: Option<&str>) -> Result<u64, StoreError> {
        self.refuse_if_read_only("purge dead letters")?;
        let conn = self.connection()?;
        let n = conn
            .execute(
                "DELETE FROM dead_letter WHERE ?1 IS NULL OR idempotency_key = ?1",
                params![key],
            )
            .map_err(sql_err(&self.path, "cannot purge dead_letter"))?;
        Ok(n as u64)
    }

    /// Gives dead letters of unknown processor ([`UNKNOWN_PROCESSOR`]: written
    /// before processors were recorded) to `processor`: `key`'s, or all of
    /// them. A letter `processor` already has for the same key absorbs the
    /// other's attempts. Returns how many were adopted.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table cannot be written.
    pub fn adopt_dead_letters(
        &self,
        processor: &str,
        key: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.refuse_if_read_only("adopt dead letters")?;
        let mut conn = self.connection()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        let n = tx
            .execute(
                "INSERT INTO dead_letter
                    (processor, idempotency_key, id, image_key, size, created_at, error_class,
                     error_kind, message, attempts, first_failed_at, last_failed_at)
                 SELECT ?1, idempotency_key, id, image_key, size, created_at, error_class,
                        error_kind, message, attempts, first_failed_at, last_failed_at
                 FROM dead_letter WHERE processor = ?2 AND (?3 IS NULL OR idempotency_key = ?3)
                 ORDER BY idempotency_key
                 ON CONFLICT (processor, idempotency_key) DO UPDATE SET
                    attempts = dead_letter.attempts + excluded.attempts,
                    first_failed_at = min(dead_letter.first_failed_at, excluded.first_failed_at)",
                params![processor, UNKNOWN_PROCESSOR, key],
            )
            .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        tx.execute(
            "DELETE FROM dead_letter WHERE processor = ?1 AND (?2 IS NULL OR idempotency_key = ?2)",
            params![UNKNOWN_PROCESSOR, key],
        )
        .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        tx.commit()
            .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        Ok(n as u64)
    }

    /// Removes `processor`'s dead letters among `keys` whose key has since
    /// succeeded under the same processor; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the tables cannot be written.
    pub fn clear_recovered_dead_letters<'k>(
        &self,
        processor: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<u64, StoreError> {
        self.refuse_if_read_only("clear dead letters")?;
        let mut conn = self.connection()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        let mut n = 0;
        {
            let mut delete = tx
                .prepare(
                    "DELETE FROM dead_letter WHERE processor = ?1 AND idempotency_key = ?2
                       AND EXISTS (SELECT 1 FROM tasks WHERE tasks.processor = ?1
                                   AND tasks.idempotency_key = ?2 AND status = 'succeeded')",
                )
                .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
            for key in keys {
                n += delete
                    .execute(params![processor, key])
                    .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
            }
        }
        tx.commit()
            .map_err(sql_err(&self.path, "cannot update dead_letter"))?;
        Ok(n as u64)
    }

    /// Succeeded records of every processor but `processor`, by name: one
    /// indexed seek per processor to find the names, then a count of each
    /// one's records (`processor`'s own, usually the bulk, are not counted).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table cannot be read.
    pub fn other_processors(&self, processor: &str) -> Result<Vec<ProcessorRecords>, StoreError> {
        let conn = self.connection()?;
        let err = || sql_err(&self.path, "cannot read tasks");
        // Files before version 3 have no processor column: all is unknown.
        let filter = if self.version >= 3 {
            "processor = ?1"
        } else {
            "?1 = ''"
        };
        let count = |name: &str| -> Result<u64, StoreError> {
            conn.query_row(
                &format!("SELECT count(*) FROM tasks WHERE {filter} AND status = 'succeeded'"),
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(err())
        };
        let mut out = Vec::new();
        if self.version < 3 {
            let succeeded = count(UNKNOWN_PROCESSOR)?;
            if succeeded > 0 && processor != UNKNOWN_PROCESSOR {
                out.push(ProcessorRecords {
                    processor: UNKNOWN_PROCESSOR.into(),
                    succeeded,
                });
            }
            return Ok(out);
        }
        // `min` over the key's leading column is one B-tree seek.
        let mut name: Option<String> = conn
            .query_row("SELECT min(processor) FROM tasks", [], |r| r.get(0))
            .map_err(err())?;
        let mut next = conn
            .prepare("SELECT min(processor) FROM tasks WHERE processor > ?1")
            .map_err(err())?;
        while let Some(n) = name {
            if n != processor {
                let succeeded = count(&n)?;
                if succeeded > 0 {
                    out.push(ProcessorRecords {
                        processor: n.clone(),
                        succeeded,
                    });
                }
            }
            name = next.query_row(params![n], |r| r.get(0)).map_err(err())?;
        }
        Ok(out)
    }
}

fn no_such_database(path: &Path) -> StoreError {
    StoreError::NotTaskq {
        path: path.display().to_string(),
        message: "no such database".into(),
    }
}

/// `file:PATH?immutable=1`, with the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(*b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Creates a new database file readable by its owner only, before SQLite
/// opens it (SQLite gives the `-wal` and `-shm` files the same permissions).
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql_err(path, "cannot read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let foreign: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err(path, "cannot read schema"))?;
        if foreign > 0 {
            return Err(StoreError::NotTaskq {
                path: path.display().to_string(),
                message: format!(
                    "holds {foreign} table(s) but no taskq schema version; refusing to touch it"
                ),
            });
        }
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err(path, "cannot start migration"))?;
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(sql_err(
            path,
            &format!("cannot migrate schema from version {from}"),
        ))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql_err(path, "cannot set schema version"))?;
    tx.commit()
        .map_err(sql_err(path, "cannot commit migration"))
}

impl Store for SqliteStore {
    fn reader(&self, processor: &str) -> Result<Box<dyn StoreReader>, StoreError> {
        let conn = self.connect(self.options.reader_cache_kib)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(sql_err(&self.path, "cannot set query_only"))?;
        Ok(Box::new(SqliteReader {
            conn,
            path: self.path.clone(),
            processor: processor.into(),
        }))
    }

    fn writer(&self, processor: &str) -> Result<Box<dyn StoreWriter>, StoreError> {
        self.refuse_if_read_only("write records")?;
        let conn = self.connect(self.options.writer_cache_kib)?;
        let sync = match self.options.durability {
            Durability::Batch => "NORMAL",
            Durability::GroupCommit => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(sql_err(&self.path, "cannot set synchronous"))?;
        // Checkpoints run on their own thread (below), not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err(&self.path, "cannot set wal_autocheckpoint"))?;
        let checkpointer = Checkpointer::start(self.connect(1024)?);
        Ok(Box::new(SqliteWriter {
            conn,
            path: self.path.clone(),
            processor: processor.into(),
            insert_full: insert_tasks_sql(ROWS_PER_INSERT),
            checkpointer: Some(checkpointer),
        }))
    }

    fn for_each_succeeded_key(
        &self,
        processor: &str,
        f: &mut dyn FnMut(&str),
    ) -> Result<u64, StoreError> {
        let conn = self.connection()?;
        let mut stmt = conn
            .prepare(
                "SELECT idempotency_key FROM tasks WHERE processor = ?1 AND status = 'succeeded'",
            )
            .map_err(sql_err(&self.path, "cannot read history"))?;
        let mut rows = stmt
            .query(params![processor])
            .map_err(sql_err(&self.path, "cannot read history"))?;
        let mut n = 0;
        while let Some(row) = rows
            .next()
            .map_err(sql_err(&self.path, "cannot read history"))?
        {
            let key = row
                .get_ref(0)
                .and_then(|v| v.as_str().map_err(Into::into))
                .map_err(sql_err(&self.path, "cannot read history"))?;
            f(key);
            n += 1;
        }
        Ok(n)
    }

    fn other_processors(&self, processor: &str) -> Result<Vec<ProcessorRecords>, StoreError> {
        SqliteStore::other_processors(self, processor)
    }

    fn recovery_path(&self) -> Option<PathBuf> {
        let mut path = self.path.clone().into_os_string();
        path.push(".unsaved.ndjson");
        Some(path.into())
    }
}

struct SqliteReader {
    conn: Connection,
    path: PathBuf,
    processor: CompactString,
}

impl StoreReader for SqliteReader {
    fn lookup_succeeded(&mut self, key: &str) -> Result<Option<Recorded>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT image_key, size, output_key FROM tasks
                 WHERE processor = ?1 AND idempotency_key = ?2 AND status = 'succeeded'",
            )
            .map_err(sql_err(&self.path, "cannot look up history"))?;
        stmt.query_row(params![self.processor.as_str(), key], |r| {
            Ok(Recorded {
                image_key: CompactString::from(r.get_ref(0)?.as_str()?),
                size: CompactString::from(r.get_ref(1)?.as_str()?),
                output_key: r.get_ref(2)?.as_str_or_null()?.map(CompactString::from),
            })
        })
        .optional()
        .map_err(sql_err(&self.path, "cannot look up history"))
    }
}

struct SqliteWriter {
    conn: Connection,
    path: PathBuf,
    /// Every record and dead letter this writer commits is this processor's.
    processor: CompactString,
    /// The SQL of a full multi-row insert, built once.
    insert_full: String,
    checkpointer: Option<Checkpointer>,
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
        // Leave a tidy file: the WAL copied into the database and truncated.
        // Best effort: a reader still open elsewhere only delays it to the next run.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// Copies the WAL into the database every 50 ms on its own connection and
/// thread (`PASSIVE`: it never waits for the writer), so that no commit pays
/// for a checkpoint. SQLite restarts the WAL from its start once a checkpoint
/// has caught up, so the file stays bounded.
struct Checkpointer {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    handle: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Self {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("taskq-checkpoint".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !*stopped {
                    let (guard, _) = cv
                        .wait_timeout(stopped, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    if !*stopped {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
            })
            .expect("the checkpoint thread starts");
        Checkpointer { stop, handle }
    }

    fn stop(self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        let _ = self.handle.join();
    }
}

/// Rows per multi-row `INSERT` (9 parameters each plus the processor, far
/// below SQLite's limit). One statement per 64 rows instead of one per row:
/// the statement set-up (cursors, B-tree open, bindings) is paid once per chunk.
const ROWS_PER_INSERT: usize = 64;

/// Parameters of one row in [`insert_tasks_sql`], after the shared `?1`.
const TASK_COLUMNS: usize = 9;

/// The `INSERT … ON CONFLICT` for `rows` rows of one processor (`?1`): a
/// success is never overwritten, a failure is (by a later success or failure).
///
/// `OR FAIL`: a row breaking a constraint other than the key (which the upsert
/// handles) stops the statement without undoing its earlier rows, so SQLite
/// keeps no statement journal; `commit` then rolls the whole batch back.
fn insert_tasks_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO tasks
        (processor, idempotency_key, id, image_key, size, status, attempts, created_at,
         finished_at, output_key)
    VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?1");
        for c in 0..TASK_COLUMNS {
            sql.push_str(&format!(", ?{}", r * TASK_COLUMNS + c + 2));
        }
        sql.push(')');
    }
    sql.push_str(
        "
    ON CONFLICT (processor, idempotency_key) DO UPDATE SET
        id = excluded.id, image_key = excluded.image_key, size = excluded.size,
        status = excluded.status, attempts = excluded.attempts,
        finished_at = excluded.finished_at, output_key = excluded.output_key,
        version = tasks.version + 1
    WHERE tasks.status <> 'succeeded'",
    );
    sql
}

const INSERT_DEAD: &str = "INSERT INTO dead_letter
        (processor, idempotency_key, id, image_key, size, created_at, error_class, error_kind,
         message, attempts, first_failed_at, last_failed_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (processor, idempotency_key) DO UPDATE SET
        id = excluded.id, error_class = excluded.error_class, error_kind = excluded.error_kind,
        message = excluded.message, attempts = dead_letter.attempts + excluded.attempts,
        last_failed_at = excluded.last_failed_at";

impl StoreWriter for SqliteWriter {
    fn commit(&mut self, batch: &[Pending]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(&path, "cannot begin a batch"))?;
        {
            let mut sizes: Vec<CompactString> = Vec::with_capacity(ROWS_PER_INSERT);
            for chunk in batch.chunks(ROWS_PER_INSERT) {
                let sql = if chunk.len() == ROWS_PER_INSERT {
                    &self.insert_full
                } else {
                    &insert_tasks_sql(chunk.len())
                };
                let mut insert = tx
                    .prepare_cached(sql)
                    .map_err(sql_err(&path, "cannot prepare insert"))?;
                sizes.clear();
                sizes.extend(chunk.iter().map(|p| {
                    let mut s = CompactString::default();
                    use std::fmt::Write;
                    let _ = write!(s, "{}", p.record.task.size);
                    s
                }));
                insert
                    .raw_bind_parameter(1, self.processor.as_str())
                    .map_err(sql_err(&path, "cannot bind a record"))?;
                let mut i = 1;
                for (r, size) in chunk.iter().map(|p| &p.record).zip(&sizes) {
                    let t = &r.task;
                    let values: [&dyn rusqlite::ToSql; TASK_COLUMNS] = [
                        &t.idempotency_key.as_str(),
                        &t.id.as_str(),
                        &t.image_key.as_str(),
                        &size.as_str(),
                        &r.status.as_str(),
                        &t.attempts,
                        &(t.created_at as i64),
                        &(r.finished_at as i64),
                        &r.output_key.as_deref(),
                    ];
                    for v in values {
                        i += 1;
                        insert
                            .raw_bind_parameter(i, v)
                            .map_err(sql_err(&path, "cannot bind a record"))?;
                    }
                }
                insert
                    .raw_execute()
                    .map_err(sql_err(&path, "cannot insert records"))?;
            }
            let mut dead = batch.iter().filter_map(|p| p.dead.as_ref()).peekable();
            if dead.peek().is_some() {
                let mut insert = tx
                    .prepare_cached(INSERT_DEAD)
                    .map_err(sql_err(&path, "cannot prepare insert"))?;
                for d in dead {
                    let t = &d.task;
                    insert
                        .execute(params![
                            self.processor.as_str(),
                            t.idempotency_key.as_str(),
                            t.id.as_str(),
                            t.image_key.as_str(),
                            t.size.to_string(),
                            t.created_at as i64,
                            d.class.to_string(),
                            d.kind,
                            d.message,
                            d.attempts,
                            d.first_failed_at as i64,
                            d.last_failed_at as i64,
                        ])
                        .map_err(sql_err(&path, "cannot insert a dead letter"))?;
                }
            }
        }
        tx.commit().map_err(sql_err(&path, "cannot commit a batch"))
    }
}

/// The `status` of a record, as stored.
impl std::fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::idempotency::TaskRecord;

    fn rec(r: TaskRecord) -> Pending {
        Pending {
            record: r,
            dead: None,
            ack: None,
        }
    }

    fn record(i: u32, status: RecordStatus) -> TaskRecord {
        let task = Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap())
            .unwrap()
            .with_id(i.to_string());
        TaskRecord {
            task,
            status,
            finished_at: 1,
            output_key: Some("out".into()),
        }
    }

    #[test]
    fn create_commit_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let mut w = store.writer("p").unwrap();
        w.commit(&[
            rec(record(1, RecordStatus::Succeeded)),
            rec(record(2, RecordStatus::Failed)),
        ])
        .unwrap();
        let mut r = store.reader("p").unwrap();
        let hit = r
            .lookup_succeeded("img/000001.jpg:200x200")
            .unwrap()
            .unwrap();
        assert_eq!(hit.size, "200x200");
        assert_eq!(hit.output_key.as_deref(), Some("out"));
        assert!(r
            .lookup_succeeded("img/000002.jpg:200x200")
            .unwrap()
            .is_none());
        assert!(r.lookup_succeeded("nope").unwrap().is_none());
        let mut keys = vec![];
        assert_eq!(
            store
                .for_each_succeeded_key("p", &mut |k| keys.push(k.to_string()))
                .unwrap(),
            1
        );
        assert_eq!(keys, ["img/000001.jpg:200x200"]);
    }

    #[test]
    fn success_is_never_overwritten_failure_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let mut w = store.writer("p").unwrap();
        w.commit(&[rec(record(1, RecordStatus::Failed))]).unwrap();
        w.commit(&[rec(record(1, RecordStatus::Succeeded))])
            .unwrap();
        w.commit(&[rec(record(1, RecordStatus::Failed))]).unwrap();
        let conn = store.connection().unwrap();
        let (status, version): (String, i64) = conn
            .query_row("SELECT status, version FROM tasks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((status.as_str(), version), ("succeeded", 2));
    }

    #[test]
    fn schema_versions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        // Reopening an up-to-date file is fine.
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(
            matches!(e, StoreError::NewerSchema { found: 99, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("newer"));
    }

    /// A version-1 file (its CHECKs as IN lists) is migrated in place: same
    /// rows, the checks still enforced, and its keys still deduplicate.
    #[test]
    fn a_version_1_file_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts,
                    created_at, finished_at, output_key, version)
                 VALUES ('img/a.jpg:200x200', '7', 'img/a.jpg', '200x200', 'succeeded', 2,
                    10, 20, 'variants/200x200/img/a.jpg', 3)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO dead_letter VALUES ('img/b.jpg:200x200', '8', 'img/b.jpg',
                    '200x200', 11, 'permanent', 'bad_source', 'cannot decode', 1, 12, 12)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let conn = store.connection().unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let row: (String, String, i64, i64) = conn
            .query_row(
                "SELECT id, output_key, attempts, version FROM tasks
                 WHERE idempotency_key = 'img/a.jpg:200x200'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, ("7".into(), "variants/200x200/img/a.jpg".into(), 2, 3));
        let dead: i64 = conn
            .query_row("SELECT count(*) FROM dead_letter", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dead, 1);
        let schema: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'tasks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(schema.contains("status = 'queued' OR"), "{schema}");
        let bad = conn.execute(
            "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts, created_at)
             VALUES ('k', '1', 'img/k.jpg', '1x1', 'done', 1, 0)",
            [],
        );
        assert!(bad.is_err(), "the status check still holds");
        // Its rows say no processor: done for none.
        let mut reader = store.reader("simulated").unwrap();
        assert!(reader
            .lookup_succeeded("img/a.jpg:200x200")
            .unwrap()
            .is_none());
        let mut reader = store.reader(UNKNOWN_PROCESSOR).unwrap();
        let found = reader
            .lookup_succeeded("img/a.jpg:200x200")
            .unwrap()
            .unwrap();
        assert_eq!(
            found.output_key.as_deref(),
            Some("variants/200x200/img/a.jpg")
        );
    }

    /// A version-2 file: the schema the previous release wrote.
    fn version_2_file(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute(
            "INSERT INTO tasks (idempotency_key, id, image_key, size, status, attempts,
                created_at, finished_at, output_key, version)
             VALUES ('img/a.jpg:200x200', '7', 'img/a.jpg', '200x200', 'succeeded', 1,
                10, 20, 'variants/200x200/img/a.jpg', 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO dead_letter VALUES ('img/b.jpg:200x200', '8', 'img/b.jpg',
                '200x200', 11, 'permanent', 'bad_source', 'cannot decode', 1, 12, 12)",
            [],
        )
        .unwrap();
    }

    /// Version 2 -> 3: every row is kept, with an unknown processor, so no
    /// processor takes an old record for its own.
    #[test]
    fn a_version_2_file_is_migrated_with_unknown_processors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        version_2_file(&path);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.schema_version(), 3);
        let letters = store.dead_letters(None).unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].processor, UNKNOWN_PROCESSOR);
        assert_eq!(letters[0].kind, "bad_source");
        for p in ["simulated", NAME_OF_THUMBNAIL] {
            let mut r = store.reader(p).unwrap();
            assert!(r.lookup_succeeded("img/a.jpg:200x200").unwrap().is_none());
            assert_eq!(store.for_each_succeeded_key(p, &mut |_| {}).unwrap(), 0);
        }
        assert_eq!(
            store.other_processors("simulated").unwrap(),
            [ProcessorRecords {
                processor: UNKNOWN_PROCESSOR.into(),
                succeeded: 1
            }]
        );
        // The same key, now done by a processor, is a row of its own.
        let mut w = store.writer("simulated").unwrap();
        let mut r = record(1, RecordStatus::Succeeded);
        r.task = Task::new("img/a.jpg", "200x200".parse().unwrap()).unwrap();
        w.commit(&[rec(r)]).unwrap();
        let rows: i64 = store
            .connection()
            .unwrap()
            .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        // Adopting gives the unknown dead letter to a processor.
        assert_eq!(store.adopt_dead_letters("simulated", None).unwrap(), 1);
        assert_eq!(store.dead_letters(None).unwrap()[0].processor, "simulated");
    }

    const NAME_OF_THUMBNAIL: &str = crate::processor::thumbnail::NAME;

    /// Records are the processor's own: a key done by one is new to another.
    #[test]
    fn a_key_is_done_only_for_the_processor_that_recorded_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        store
            .writer("simulated")
            .unwrap()
            .commit(&[
                rec(record(1, RecordStatus::Succeeded)),
                rec(record(2, RecordStatus::Succeeded)),
            ])
            .unwrap();
        store
            .writer(NAME_OF_THUMBNAIL)
            .unwrap()
            .commit(&[rec(record(2, RecordStatus::Succeeded))])
            .unwrap();
        let key = "img/000001.jpg:200x200";
        assert!(store
            .reader("simulated")
            .unwrap()
            .lookup_succeeded(key)
            .unwrap()
            .is_some());
        assert!(store
            .reader(NAME_OF_THUMBNAIL)
            .unwrap()
            .lookup_succeeded(key)
            .unwrap()
            .is_none());
        assert_eq!(
            store
                .for_each_succeeded_key(NAME_OF_THUMBNAIL, &mut |_| {})
                .unwrap(),
            1
        );
        assert_eq!(
            store.other_processors(NAME_OF_THUMBNAIL).unwrap(),
            [ProcessorRecords {
                processor: "simulated".into(),
                succeeded: 2
            }]
        );
        assert_eq!(
            store.other_processors("simulated").unwrap(),
            [ProcessorRecords {
                processor: NAME_OF_THUMBNAIL.into(),
                succeeded: 1
            }]
        );
    }

    /// Opening for reading neither migrates nor writes: a version-2 file stays
    /// version 2 and byte for byte the same, and its dead letters are listed.
    #[test]
    fn read_only_opening_neither_migrates_nor_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        version_2_file(&path);
        // Fold the WAL in, so the database file alone holds everything.
        Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let store = SqliteStore::open_read_only(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.schema_version(), 2);
        let letters = store.dead_letters(None).unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].processor, UNKNOWN_PROCESSOR);
        assert!(store.purge_dead_letters(None).is_err());
        assert!(store.writer("p").is_err());
        drop(store);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let missing =
            SqliteStore::open_read_only(dir.path().join("none.db"), SqliteOptions::default());
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("no such database"));
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, just some text that is long enough",
        )
        .unwrap();
        let e = SqliteStore::open(&text, SqliteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("not a SQLite database"), "{e}");
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE people (name TEXT)")
            .unwrap();
        let e = SqliteStore::open(&other, SqliteOptions::default()).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
    }

    #[test]
    fn dead_letters_round_trip_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let mut w = store.writer("p").unwrap();
        let dl = |i| DeadLetter {
            task: Task {
                created_at: 5,
                attempts: 1,
                ..record(i, RecordStatus::Failed).task
            },
            processor: "p".into(),
            class: ErrorClass::Permanent,
            kind: "bad_source".into(),
            message: "cannot decode".into(),
            attempts: 1,
            first_failed_at: u64::from(i),
            last_failed_at: u64::from(i),
        };
        let with_letter = |i| Pending {
            record: record(i, RecordStatus::Failed),
            dead: Some(dl(i)),
            ack: None,
        };
        w.commit(&[with_letter(1), with_letter(2)]).unwrap();
        let all = store.dead_letters(None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], dl(1));
        assert_eq!(
            store
                .dead_letters(Some("img/000002.jpg:200x200"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .purge_dead_letters(Some("img/000001.jpg:200x200"))
                .unwrap(),
            1
        );
        w.commit(&[rec(record(2, RecordStatus::Succeeded))])
            .unwrap();
        // Another processor's success clears nothing; the same one's does.
        let mut other = store.writer("q").unwrap();
        other
            .commit(&[rec(record(2, RecordStatus::Succeeded))])
            .unwrap();
        let key = "img/000002.jpg:200x200";
        assert_eq!(store.clear_recovered_dead_letters("q", [key]).unwrap(), 0);
        assert_eq!(store.clear_recovered_dead_letters("p", [key]).unwrap(), 1);
        assert!(store.dead_letters(None).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
