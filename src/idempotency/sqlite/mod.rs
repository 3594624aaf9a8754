//! The embedded store: one SQLite file in WAL mode.
//!
//! A new file is created with the schema; an older schema is migrated in one
//! transaction (the `MIGRATIONS` table in `schema`); a newer one is refused.
//! [`SqliteStore::open_read_only`] reads a file of any version up to this one
//! without migrating it or writing to it. SQL only ever takes values as bound
//! parameters.
//!
//! The schema and its versions are described in `schema`.
//!
//! - `options`: [`SqliteOptions`].
//! - `schema`: [`SCHEMA_VERSION`], [`UNKNOWN_PROCESSOR`], the migrations and
//!   the private creation of a new file.
//! - `error`: SQLite errors as [`StoreError`]s.
//! - `reader` and `writer`: the [`Store`] trait's history reader and batch
//!   writer; `checkpoint`: the thread that checkpoints the WAL beside the
//!   writer.
//! - `dlq`: dead-letter queries ([`SqliteStore::dead_letters`] and the rest).
//! - `tune`: [`tune_sqlite_process`], the one `unsafe` call.
//!
//! Here: [`SqliteStore`], its opening (create, migrate, read-only) and its
//! connections, and the [`Store`] implementation. Invariant: a store opened
//! read-write holds a file at [`SCHEMA_VERSION`] that it could write when
//! opened; one opened read-only never writes.

mod checkpoint;
mod dlq;
mod error;
mod options;
mod reader;
mod schema;
mod tune;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use self::checkpoint::Checkpointer;
use self::error::{no_such_database, sql_err};
use self::reader::SqliteReader;
use self::schema::{create_private, migrate};
use self::writer::SqliteWriter;
use super::store::{ProcessorRecords, Store, StoreError, StoreReader, StoreWriter};

pub use self::options::SqliteOptions;
pub use self::schema::{SCHEMA_VERSION, UNKNOWN_PROCESSOR};
pub use self::tune::tune_sqlite_process;
use super::store::Durability;

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

impl Store for SqliteStore {
    fn reader(&self, processor: &str) -> Result<Box<dyn StoreReader>, StoreError> {
        let conn = self.connect(self.options.reader_cache_kib)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(sql_err(&self.path, "cannot set query_only"))?;
        Ok(Box::new(SqliteReader::new(
            conn,
            self.path.clone(),
            processor,
        )))
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
        // Checkpoints run on their own thread (`checkpoint`), not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err(&self.path, "cannot set wal_autocheckpoint"))?;
        let checkpointer = Checkpointer::start(self.connect(1024)?);
        Ok(Box::new(SqliteWriter::new(
            conn,
            self.path.clone(),
            processor,
            checkpointer,
        )))
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

#[cfg(all(test, not(feature = "loom")))]
mod tests;
