//! Objects by key: the [`ObjectStore`] trait, its key rules, [`LocalStore`]
//! (a local directory) and, with the `s3` feature, [`S3Store`] (a bucket of
//! an S3-compatible service: AWS S3, MinIO).
//!
//! A key is a relative, `/`-separated path (`img/000001.jpg`,
//! `variants/200x200/img/000001.jpg`). Every implementation promises:
//!
//! 1. **Keys stay inside the store.** A key that is absolute, has an empty,
//!    `.` or `..` segment, a backslash, a drive prefix, a NUL or a control
//!    character is refused before anything is touched ([`check_key`]); so is a
//!    key that reaches outside the store through a symbolic link.
//! 2. **Streaming.** Objects are read and written through fixed-size chunks of
//!    [`CHUNK_BYTES`]; no call buffers a whole object.
//! 3. **Atomic writes.** A write becomes visible under its key only when
//!    [`ObjectWriter::commit`] returns; a crash before that leaves the previous
//!    object (or none), never a torn one. An uncommitted writer that is dropped
//!    leaves nothing behind.
//!
//! `local.rs` and `s3.rs` say how each store keeps these promises.

use std::io::{self, BufRead, Read, Seek, Write};

mod local;
pub use local::LocalStore;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "s3")]
pub use s3::{S3Location, S3OpenError, S3Store, PARTS_IN_FLIGHT, PART_BYTES, READ_AHEAD_CHUNKS};

/// The size of every read from and write to storage, in bytes (64 KiB).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Longest accepted key, in bytes.
pub const MAX_OBJECT_KEY_BYTES: usize = 4096;

/// Longest accepted key segment (file name), in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The lock file in a [`LocalStore`]'s root: a run that writes into the store
/// holds an exclusive lock on it ([`LocalStore::lock`]), and it holds that
/// run's process id. No key may name it.
pub const LOCK_FILE: &str = ".taskq-lock";

/// The name prefix of a write in progress. No key segment may start with it;
/// files with it are what a crashed write leaves, and
/// [`LocalStore::sweep_temp`] removes them.
pub const TEMP_PREFIX: &str = ".taskq-tmp-";

/// Why an object could not be read or written. [`ObjectError::is_transient`]
/// tells a hiccup worth retrying from a request that will fail again.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The key breaks the key rules.
    #[error("key {key:?}: {reason}")]
    InvalidKey {
        /// The key, as given.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The key leads outside the store root through a symbolic link.
    #[error("key {key:?}: {detail}")]
    OutsideRoot {
        /// The key, as given.
        key: String,
        /// Which link leads where.
        detail: String,
    },
    /// No object has this key.
    #[error("key {key:?}: no such object")]
    NotFound {
        /// The key, as given.
        key: String,
    },
    /// The key names something that is not an object (a directory), or an
    /// object stands where the key needs a directory.
    #[error("key {key:?}: {detail}")]
    NotAnObject {
        /// The key, as given.
        key: String,
        /// What is in the way.
        detail: String,
    },
    /// The object service refused the request and would refuse it again
    /// (access denied, bad credentials, a malformed request).
    #[error("key {key:?}: {detail}")]
    Refused {
        /// The key, as given (an S3 store names it `s3://BUCKET/PREFIX/KEY`).
        key: String,
        /// What was refused, and the service's answer.
        detail: String,
    },
    /// The storage failed (for an object service: throttling, 5xx answers,
    /// timeouts, dropped connections).
    #[error("key {key:?}: cannot {op}: {cause}")]
    Io {
        /// The key, as given.
        key: String,
        /// What was being done (`open`, `read`, `write`, `sync`, `rename`, …).
        op: &'static str,
        /// The operating system's error.
        cause: io::Error,
    },
}

impl ObjectError {
    /// True for a storage failure that may pass (I/O errors); false for a
    /// request that will fail the same way again.
    pub fn is_transient(&self) -> bool {
        matches!(self, ObjectError::Io { .. })
    }

    /// A short machine-readable kind: `invalid_key`, `outside_root`,
    /// `not_found`, `not_an_object`, `refused` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectError::InvalidKey { .. } => "invalid_key",
            ObjectError::OutsideRoot { .. } => "outside_root",
            ObjectError::NotFound { .. } => "not_found",
            ObjectError::NotAnObject { .. } => "not_an_object",
            ObjectError::Refused { .. } => "refused",
            ObjectError::Io { .. } => "io",
        }
    }

    pub(crate) fn io(key: &str, op: &'static str, cause: io::Error) -> Self {
        ObjectError::Io {
            key: key.into(),
            op,
            cause,
        }
    }
}

/// What a reader or writer moved to or from storage, and the time spent in
/// the storage calls themselves (not in the caller's work between them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Bytes read or written.
    pub bytes: u64,
    /// Nanoseconds inside storage calls (open, read, write, sync, rename).
    pub io_ns: u64,
}

/// A stream over one object's bytes, read from storage in [`CHUNK_BYTES`]
/// chunks. Seekable, because image decoders look ahead.
pub trait ObjectReader: BufRead + Seek + Send {
    /// What has been read so far.
    fn stats(&self) -> IoStats;
}

/// A new object being written, in [`CHUNK_BYTES`] chunks. Nothing is visible
/// under its key until [`commit`](ObjectWriter::commit); dropping it
/// uncommitted discards what was written.
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key, replacing any
    /// object there, and returns what was written.
    ///
    /// # Errors
    ///
    /// [`ObjectError::Io`] when the data cannot be flushed, synced or moved
    /// into place; the key then still holds what it held before.
    fn commit(self: Box<Self>) -> Result<IoStats, ObjectError>;

    /// What has been written to storage so far.
    fn stats(&self) -> IoStats;
}

/// Objects by key. Shared by worker threads: every method takes `&self`.
///
/// # Examples
///
/// ```
/// # if cfg!(feature = "loom") { return Ok(()); }
/// use std::io::{Read, Write};
/// use taskq_thumbnail::object_store::{LocalStore, ObjectStore};
///
/// let dir = tempfile::tempdir()?;
/// let store = LocalStore::open(dir.path())?;
/// let mut w = store.create("img/a.txt")?;
/// w.write_all(b"hello")?;
/// w.commit()?;
/// let mut text = String::new();
/// store.open("img/a.txt")?.read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
/// assert!(store.open("../a.txt").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ObjectStore: Send + Sync + 'static {
    /// Opens the object under `key` for reading.
    ///
    /// # Errors
    ///
    /// [`ObjectError::InvalidKey`] or [`ObjectError::OutsideRoot`] for a key
    /// that may not be used, [`ObjectError::NotFound`] when there is no such
    /// object, [`ObjectError::Io`] when storage fails.
    fn open(&self, key: &str) -> Result<Box<dyn ObjectReader>, ObjectError>;

    /// Starts writing a new object under `key`.
    ///
    /// # Errors
    ///
    /// As [`open`](ObjectStore::open), and [`ObjectError::NotAnObject`] when
    /// an object stands where the key needs a directory (or the key names a
    /// directory).
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError>;

    /// Writes everything `data` yields under `key`, atomically, and returns
    /// what was written.
    ///
    /// # Errors
    ///
    /// As [`create`](ObjectStore::create) and [`ObjectWriter::commit`];
    /// [`ObjectError::Io`] when `data` fails.
    fn put(&self, key: &str, data: &mut dyn Read) -> Result<IoStats, ObjectError> {
        let mut writer = self.create(key)?;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        loop {
            let n = match data.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ObjectError::io(key, "read the data for", e)),
            };
            writer
                .write_all(&chunk[..n])
                .map_err(|e| ObjectError::io(key, "write", e))?;
        }
        writer.commit()
    }
}

impl<S: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<S> {
    fn open(&self, key: &str) -> Result<Box<dyn ObjectReader>, ObjectError> {
        (**self).open(key)
    }
    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        (**self).create(key)
    }
}

/// Checks `key` against the key rules: 1 to [`MAX_OBJECT_KEY_BYTES`] bytes, a
/// relative path of `/`-separated segments, each 1 to [`MAX_SEGMENT_BYTES`]
/// bytes, none `.` or `..` or starting with [`TEMP_PREFIX`]; no backslash, no
/// drive prefix (`C:`), no NUL or other control character.
///
/// # Errors
///
/// [`ObjectError::InvalidKey`] naming the rule that failed.
///
/// # Examples
///
/// ```
/// use taskq_thumbnail::object_store::check_key;
/// assert!(check_key("variants/200x200/img/a.jpg").is_ok());
/// for bad in ["", "/etc/passwd", "../x", "img/../../x", "img//a", "./a", "a\\b", "C:x", "a\0b"] {
///     assert!(check_key(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    let bad = |reason: String| {
        Err(ObjectError::InvalidKey {
            key: key.into(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("must not be empty".into());
    }
    if key.len() > MAX_OBJECT_KEY_BYTES {
        return bad(format!(
            "must be at most {MAX_OBJECT_KEY_BYTES} bytes, got {}",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return bad("must not contain NUL or control characters".into());
    }
    let b = key.as_bytes();
    if key.starts_with('/') || key.contains('\\') || (b.len() >= 2 && b[1] == b':') {
        return bad("must be a relative path with '/' separators".into());
    }
    if key == LOCK_FILE {
        return bad(format!("must not be {LOCK_FILE:?} (the store's lock file)"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("must not contain an empty segment".into()),
            "." | ".." => return bad(format!("must not contain a {segment:?} segment")),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return bad(format!(
                    "segments must be at most {MAX_SEGMENT_BYTES} bytes, got {}",
                    s.len()
                ))
            }
            s if s.starts_with(TEMP_PREFIX) => {
                return bad(format!(
                    "segments must not start with {TEMP_PREFIX:?} (reserved for writes in progress)"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for good in [
            "a",
            "img/000001.jpg",
            "variants/200x200/img/a.png",
            ".hidden/x",
            "a..b/c",
            "ünïcödé/ключ.png",
        ] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
        let long_segment = "x".repeat(MAX_SEGMENT_BYTES + 1);
        let long_key = "ab/".repeat(MAX_OBJECT_KEY_BYTES / 3 + 1);
        for bad in [
            "",
            "/abs",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "C:/x",
            "c:x",
            "a\0b",
            "a\nb",
            "a\u{85}b",
            "img/.taskq-tmp-1-2",
            ".taskq-lock",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.kind(), "invalid_key", "{bad:?}");
            assert!(!e.is_transient());
        }
    }

    #[test]
    fn errors_name_the_key_and_class() {
        let e = ObjectError::io("img/a.jpg", "read", io::Error::other("disk on fire"));
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "key \"img/a.jpg\": cannot read: disk on fire"
        );
        let e = ObjectError::NotFound { key: "x".into() };
        assert!(!e.is_transient());
        assert_eq!(e.kind(), "not_found");
    }
}
