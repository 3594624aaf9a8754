//! The recovery file: records that could not be committed, kept beside the
//! store and committed by the next engine started on it.
//!
//! When a commit fails (disk full, database locked past the busy timeout,
//! read-only file), the writer appends that batch and every later one to
//! [`Store::recovery_path`] (`<db>.unsaved.ndjson` for SQLite), one JSON
//! object per record: `{"processor": …, "record": …, "dead_letter": …}`,
//! fsynced. Nothing else reads or writes the file.
//!
//! The next engine started on the same store replays it before any work:
//!
//! 1. Read it line by line (a line at a time, so memory does not grow with
//!    the file) and commit the records in batches, each processor's through a
//!    writer of its own, with the usual upsert: a success is never
//!    overwritten, so a record committed meanwhile by another run stays.
//! 2. Once every line is committed, remove the file.
//!
//! A line that cannot be read fails the start with the file and line, and
//! leaves the file as it is. A crash during the replay leaves the file too:
//! the next start commits it again, which changes nothing for a record
//! already committed (a dead letter's attempts may be counted twice).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::{DeadLetter, Pending, Store, StoreError, StoreWriter, TaskRecord};

/// Records committed per transaction when replaying.
const REPLAY_BATCH: usize = 1024;

/// One line of the file.
#[derive(Serialize, Deserialize)]
struct Line<T, D> {
    /// The processor whose record it is (missing in files written before
    /// processors were recorded: unknown, `""`).
    #[serde(default)]
    processor: String,
    record: T,
    dead_letter: Option<D>,
}

/// Appends `batch`, `processor`'s records, to the recovery file at `path` and
/// syncs it.
///
/// # Errors
///
/// The I/O error if the file cannot be opened or written.
pub(crate) fn save(path: &Path, processor: &str, batch: &[Pending]) -> std::io::Result<()> {
    let mut text = String::new();
    for p in batch {
        let line = Line {
            processor: processor.to_string(),
            record: &p.record,
            dead_letter: p.dead.as_ref(),
        };
        text.push_str(&serde_json::to_string(&line).expect("records serialise"));
        text.push('\n');
    }
    let mut file = open_for_append(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Opens the recovery file for appending, creating it owner-only; never
/// through a symbolic link planted at its predictable name, and only if it is
/// a regular file.
fn open_for_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return std::io::Error::other("it is a symbolic link, which is not followed");
        }
        e
    })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    Ok(file)
}

/// Commits the recovery file of `store`, if there is one, then removes it.
/// Returns how many records it held (0 without a file).
///
/// # Errors
///
/// [`StoreError::Recovery`] for a file that cannot be read (naming the line),
/// or the store's error when a batch cannot be committed; the file is left
/// as it is either way.
pub(crate) fn replay(store: &dyn Store) -> Result<u64, StoreError> {
    let Some(path) = store.recovery_path() else {
        return Ok(0);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(recovery_error(&path, 0, format!("cannot open: {e}"))),
    };
    let mut writers: HashMap<String, Box<dyn StoreWriter>> = HashMap::new();
    let mut batches: HashMap<String, Vec<Pending>> = HashMap::new();
    let mut total = 0u64;
    let flush = |processor: &str,
                 batch: &mut Vec<Pending>,
                 writers: &mut HashMap<String, Box<dyn StoreWriter>>|
     -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let writer = match writers.get_mut(processor) {
            Some(w) => w,
            None => writers
                .entry(processor.to_string())
                .or_insert(store.writer(processor)?),
        };
        writer.commit(batch)?;
        batch.clear();
        Ok(())
    };
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let number = n as u64 + 1;
        let line = line.map_err(|e| recovery_error(&path, number, format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line<TaskRecord, DeadLetter> = serde_json::from_str(&line)
            .map_err(|e| recovery_error(&path, number, format!("not a saved record ({e})")))?;
        let mut dead = parsed.dead_letter;
        if let Some(d) = &mut dead {
            d.processor.clone_from(&parsed.processor);
        }
        let batch = batches.entry(parsed.processor.clone()).or_default();
        batch.push(Pending {
            record: parsed.record,
            dead,
            ack: None,
        });
        total += 1;
        if batch.len() >= REPLAY_BATCH {
            flush(&parsed.processor, batch, &mut writers)?;
        }
    }
    for (processor, batch) in &mut batches {
        flush(processor, batch, &mut writers)?;
    }
    drop(writers);
    std::fs::remove_file(&path).map_err(|e| {
        recovery_error(
            &path,
            0,
            format!("committed, but cannot remove the file: {e}"),
        )
    })?;
    Ok(total)
}

fn recovery_error(path: &Path, line: u64, message: String) -> StoreError {
    StoreError::Recovery {
        path: path.display().to_string(),
        line,
        message,
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::idempotency::{RecordStatus, SqliteOptions, SqliteStore};
    use crate::task::Task;

    fn pending(i: u32) -> Pending {
        Pending {
            record: TaskRecord {
                task: Task::new(&format!("img/{i}.jpg"), "10x10".parse().unwrap()).unwrap(),
                status: RecordStatus::Succeeded,
                finished_at: 1,
                output_key: None,
            },
            dead: None,
            ack: None,
        }
    }

    #[test]
    fn saved_records_are_committed_once_then_the_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let path = store.recovery_path().unwrap();
        save(&path, "p", &[pending(1), pending(2)]).unwrap();
        save(&path, "q", &[pending(3)]).unwrap();
        assert_eq!(replay(&store).unwrap(), 3);
        assert!(!path.exists());
        let mut p = store.reader("p").unwrap();
        assert!(p.lookup_succeeded("img/1.jpg:10x10").unwrap().is_some());
        assert!(p.lookup_succeeded("img/3.jpg:10x10").unwrap().is_none());
        let mut q = store.reader("q").unwrap();
        assert!(q.lookup_succeeded("img/3.jpg:10x10").unwrap().is_some());
        assert_eq!(replay(&store).unwrap(), 0);
    }

    #[test]
    fn a_bad_line_is_named_and_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap();
        let path = store.recovery_path().unwrap();
        save(&path, "p", &[pending(1)]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"record\": 5}\n")
            .unwrap();
        let e = replay(&store).unwrap_err().to_string();
        assert!(e.contains("t.db.unsaved.ndjson:2:"), "{e}");
        assert!(path.exists());
    }
}
