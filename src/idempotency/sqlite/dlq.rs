//! Dead-letter administration on the store: list, purge, adopt letters of
//! unknown processor, clear recovered ones, and count other processors'
//! records (for the `dlq` commands and the run's start-up check).
//!
//! Invariant: the writing queries refuse on a store opened read-only, and
//! each runs in one transaction; a file before schema version 3 is read as
//! having only [`UNKNOWN_PROCESSOR`] records.

use rusqlite::params;

use super::error::sql_err;
use super::schema::UNKNOWN_PROCESSOR;
use super::SqliteStore;
use crate::idempotency::store::{DeadLetter, ProcessorRecords, StoreError};
use crate::processor::ErrorClass;
use crate::task::Task;

impl SqliteStore {
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
