//! The `dedup` workload's databases: a fresh one per run, and the check that a
//! run left exactly one row per unique key.
//!
//! # One run
//!
//! 1. [`ScratchDir::new`] makes a new directory under `$TMPDIR` (the
//!    database's filesystem matters: every engine syncs to it). Each engine
//!    creates its database there before the clock starts: taskq's
//!    [`SqliteStore`](taskq::idempotency::SqliteStore) (WAL, `WITHOUT ROWID`),
//!    or the Python designs' [`SeedDb`](crate::baseline::SeedDb) (rollback
//!    journal, `synchronous=FULL`).
//! 2. The engine runs; its clock stops once every record is committed.
//! 3. [`verify`] reads the file back: every row's key is one of the batch's
//!    keys, no key twice, as many rows as unique keys (taskq: all
//!    `succeeded`); and the run's own counts agree: each unique key processed
//!    once, every repeat completed as a duplicate, nothing failed. Any
//!    difference fails the benchmark with [`BenchError::Verify`], and the
//!    directory is kept for a look.
//! 4. Otherwise the directory is removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use compact_str::CompactString;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::{BenchError, EngineKind, Sample};
use taskq::idempotency::Durability;
use taskq::task::Task;

/// How taskq makes a `dedup` run's records durable (`--durability`): the
/// engine's [`Durability`], under a name that is also read back from result
/// files.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DedupDurability {
    /// Batched commits, WAL + `synchronous=NORMAL`; a task is done when its
    /// record is handed to the writer (shutdown still waits for every commit).
    #[default]
    Batch,
    /// A task is done only once its batch is committed with `synchronous=FULL`.
    GroupCommit,
}

impl DedupDurability {
    /// The name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DedupDurability::Batch => "batch",
            DedupDurability::GroupCommit => "group-commit",
        }
    }
}

impl From<DedupDurability> for Durability {
    fn from(d: DedupDurability) -> Self {
        match d {
            DedupDurability::Batch => Durability::Batch,
            DedupDurability::GroupCommit => Durability::GroupCommit,
        }
    }
}

/// A new, empty directory for one run's database, removed on drop unless
/// [`keep`](Self::keep) was called.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates `$TMPDIR/taskq-bench-<pid>-<n>-<nanos>`.
    ///
    /// # Errors
    ///
    /// [`BenchError::Io`] when it cannot be created.
    pub fn new() -> Result<Self, BenchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "taskq-bench-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path)
            .map_err(|e| BenchError::io(format!("cannot create {}", path.display()), e))?;
        Ok(ScratchDir { path, keep: false })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's database file in it.
    pub fn db(&self) -> PathBuf {
        self.path.join("dedup.db")
    }

    /// Leaves the directory in place (a failed check keeps its evidence).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The median time of one 4 KiB append + `fdatasync` to a new file in `dir`,
/// over 16 tries, milliseconds: what one durable commit costs at least there.
///
/// # Errors
///
/// [`BenchError::Io`] when the file cannot be written.
pub fn fsync_ms(dir: &Path) -> Result<f64, BenchError> {
    use std::io::Write;
    let path = dir.join("fsync.probe");
    let io = |e| BenchError::io(format!("cannot probe fsync in {}", dir.display()), e);
    let mut f = std::fs::File::create(&path).map_err(io)?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(16);
    for _ in 0..16 {
        let start = std::time::Instant::now();
        f.write_all(&block).map_err(io)?;
        f.sync_data().map_err(io)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(super::Stat::of(times).median)
}

/// The distinct idempotency keys of a batch.
pub fn unique_keys(tasks: &[Task]) -> HashSet<CompactString> {
    tasks.iter().map(|t| t.idempotency_key().into()).collect()
}

/// Checks `engine`'s run: the database at `db` holds exactly one row per key
/// of `keys` and nothing else (for taskq, each `succeeded`), and `sample`'s
/// counts say every key was processed once and every repeat detected. Returns
/// the rows found.
///
/// # Errors
///
/// [`BenchError::Verify`] saying what differs, or [`BenchError::Db`] when the
/// file cannot be read.
pub fn verify(
    engine: EngineKind,
    db: &Path,
    keys: &HashSet<CompactString>,
    sample: &Sample,
) -> Result<u64, BenchError> {
    let fail = |message: String| BenchError::Verify {
        engine: engine.name(),
        message,
    };
    let db_err = |cause| BenchError::Db {
        context: format!("cannot read {}", db.display()),
        cause,
    };
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_err)?;
    let mut seen: HashSet<CompactString> = HashSet::with_capacity(keys.len());
    let mut stmt = conn
        .prepare("SELECT idempotency_key FROM tasks")
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while let Some(row) = rows.next().map_err(db_err)? {
        let key = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(db_err)?;
        if !keys.contains(key) {
            return Err(fail(format!("row for a key never submitted: {key:?}")));
        }
        if !seen.insert(key.into()) {
            return Err(fail(format!("two rows for key {key:?}")));
        }
    }
    if seen.len() != keys.len() {
        let missing = keys.iter().find(|k| !seen.contains(*k));
        return Err(fail(format!(
            "{} rows for {} unique keys (missing, for one: {missing:?})",
            seen.len(),
            keys.len()
        )));
    }
    if engine == EngineKind::Taskq {
        let other: i64 = conn
            .query_row(
                "SELECT count(*) FROM tasks WHERE status <> 'succeeded'",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if other != 0 {
            return Err(fail(format!("{other} rows are not 'succeeded'")));
        }
    }
    let unique = keys.len() as u64;
    if sample.failed != 0 {
        return Err(fail(format!(
            "{} tasks failed (first: {})",
            sample.failed,
            sample.first_error.as_deref().unwrap_or("?")
        )));
    }
    if sample.succeeded != unique {
        return Err(fail(format!(
            "{} tasks processed for {unique} unique keys",
            sample.succeeded
        )));
    }
    if sample.duplicates != sample.submitted - unique {
        return Err(fail(format!(
            "{} duplicates detected among {} tasks with {unique} unique keys",
            sample.duplicates, sample.submitted
        )));
    }
    Ok(seen.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::SeedDb;

    fn task(i: u32) -> Task {
        Task::new(&format!("img/{i:06}.jpg"), "200x200".parse().unwrap()).unwrap()
    }

    fn sample(submitted: u64, succeeded: u64, duplicates: u64) -> Sample {
        Sample {
            submitted,
            completed: succeeded + duplicates,
            succeeded,
            duplicates,
            ..Sample::default()
        }
    }

    #[test]
    fn scratch_dirs_are_fresh_and_removed() {
        let a = ScratchDir::new().unwrap();
        let b = ScratchDir::new().unwrap();
        assert_ne!(a.path(), b.path());
        let p = a.path().to_path_buf();
        std::fs::write(a.db(), b"x").unwrap();
        drop(a);
        assert!(!p.exists());
        let mut kept = ScratchDir::new().unwrap();
        kept.keep();
        let p = kept.path().to_path_buf();
        drop(kept);
        assert!(p.exists());
        std::fs::remove_dir_all(p).unwrap();
    }

    #[test]
    fn verify_accepts_one_row_per_key_and_names_what_differs() {
        let dir = ScratchDir::new().unwrap();
        let db = SeedDb::create(dir.db()).unwrap();
        let conn = db.connect().unwrap();
        let tasks = [task(1), task(2), task(1)];
        for t in &tasks {
            SeedDb::insert_or_ignore(&conn, t).unwrap();
        }
        let keys = unique_keys(&tasks);
        let ok = verify(EngineKind::Classic, db.path(), &keys, &sample(3, 2, 1));
        assert_eq!(ok.unwrap(), 2);
        let e = verify(EngineKind::Classic, db.path(), &keys, &sample(3, 3, 0)).unwrap_err();
        assert!(
            e.to_string()
                .contains("3 tasks processed for 2 unique keys"),
            "{e}"
        );
        let more = unique_keys(&[task(1), task(2), task(3)]);
        let e = verify(EngineKind::Classic, db.path(), &more, &sample(3, 3, 0)).unwrap_err();
        assert!(e.to_string().contains("2 rows for 3 unique keys"), "{e}");
        let fewer = unique_keys(&[task(1)]);
        let e = verify(EngineKind::Baseline, db.path(), &fewer, &sample(1, 1, 0)).unwrap_err();
        assert!(e.to_string().contains("never submitted"), "{e}");
    }
}
