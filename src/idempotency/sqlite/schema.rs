//! The schema of the store and its migrations: what a new file is created
//! with, and how an older one is brought up to date.
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
//! Invariant: a migration never changes once released; `MIGRATIONS[v]` takes
//! a file from version `v` to `v + 1`, and all of them run in one transaction.

use std::path::Path;

use rusqlite::Connection;

use super::error::sql_err;
use crate::idempotency::store::StoreError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The processor of records written before schema version 3, which did not
/// say which processor made them.
pub const UNKNOWN_PROCESSOR: &str = "";

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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

/// Creates a new database file readable by its owner only, before SQLite
/// opens it (SQLite gives the `-wal` and `-shm` files the same permissions).
pub(super) fn create_private(path: &Path) {
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

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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
