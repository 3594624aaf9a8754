//! The history reader: one read-only connection per worker, looking up
//! whether a key already succeeded under the reader's processor.
//!
//! Invariant: the connection is `query_only`; a lookup sees only the records
//! of its own processor.

use std::path::PathBuf;

use compact_str::CompactString;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::sql_err;
use crate::idempotency::store::{Recorded, StoreError, StoreReader};

pub(super) struct SqliteReader {
    conn: Connection,
    path: PathBuf,
    processor: CompactString,
}

impl SqliteReader {
    /// A reader of `processor`'s records over `conn` (already `query_only`).
    pub(super) fn new(conn: Connection, path: PathBuf, processor: &str) -> Self {
        SqliteReader {
            conn,
            path,
            processor: processor.into(),
        }
    }
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
