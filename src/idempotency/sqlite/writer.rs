//! The record writer: commits a batch of records and dead letters in one
//! transaction, with multi-row inserts.
//!
//! Invariant: a success is never overwritten (the upsert's `WHERE`), and a
//! batch is committed whole or not at all.

use std::path::PathBuf;

use compact_str::CompactString;
use rusqlite::{params, Connection};

use super::checkpoint::Checkpointer;
use super::error::sql_err;
use crate::idempotency::store::{Pending, RecordStatus, StoreError, StoreWriter};

pub(super) struct SqliteWriter {
    conn: Connection,
    path: PathBuf,
    /// Every record and dead letter this writer commits is this processor's.
    processor: CompactString,
    /// The SQL of a full multi-row insert, built once.
    insert_full: String,
    checkpointer: Option<Checkpointer>,
}

impl SqliteWriter {
    /// A writer of `processor`'s records over `conn` (its `synchronous` and
    /// checkpoint pragmas already set), with `checkpointer` running beside it.
    pub(super) fn new(
        conn: Connection,
        path: PathBuf,
        processor: &str,
        checkpointer: Checkpointer,
    ) -> Self {
        SqliteWriter {
            conn,
            path,
            processor: processor.into(),
            insert_full: insert_tasks_sql(ROWS_PER_INSERT),
            checkpointer: Some(checkpointer),
        }
    }
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
