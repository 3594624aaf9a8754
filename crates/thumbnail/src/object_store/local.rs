//! [`LocalStore`]: an [`ObjectStore`] over a local directory.
//!
//! # Keeping keys inside the root
//!
//! The root is canonicalized once, when the store is opened. Then:
//!
//! 1. Every key passes [`check_key`] first: no absolute path, no `..`, no NUL,
//!    so the lexical path `root/key` is below the root.
//! 2. **Reads** canonicalize `root/key` (every symbolic link resolved) and
//!    refuse the key unless the resolved path is still below the root; the
//!    file opened is the resolved path, which contains no link.
//! 3. **Writes** walk the key's directories one segment at a time from the
//!    root, never following a link blindly: a missing directory is created
//!    (`mkdir`, which does not follow links), a real directory is entered, a
//!    link is resolved and entered only if it resolves to a directory below the
//!    root. `create_dir_all` is not used, because it would follow a link out of
//!    the root. A link in the last segment that leads outside the root is
//!    refused too (the rename below would only replace the link, but the key
//!    is refused so that reads and writes of one key agree).
//!
//! The checks and the opens are separate system calls: the store guards
//! against hostile *keys* and against links already in the tree, not against
//! another process that rewrites the tree between a check and an open (anyone
//! who can do that can write outside the root anyway).
//!
//! # Atomic writes
//!
//! A write goes to `.taskq-tmp-<pid>-<n>` in the object's directory, created
//! with `O_CREAT|O_EXCL` (so it never follows or reuses an existing file). On
//! [`commit`](ObjectWriter::commit) the file is flushed and `fsync`ed, renamed
//! over the key (`rename(2)` is atomic), and the directory is `fsync`ed so the
//! rename itself survives a power loss. A crash leaves at most a temporary
//! file, which no key can name; [`LocalStore::sweep_temp`] removes them.
//!
//! # One run per store
//!
//! The sweep cannot tell a crashed write from one in progress, so a run that
//! writes into the store first takes [`LocalStore::lock`]: an exclusive,
//! non-blocking `flock` on [`LOCK_FILE`] in the root, which then holds the
//! run's process id (for the error a second run gets). The lock lives as long
//! as the store value; the operating system releases it when the process
//! exits, however it exits, so a crash never leaves the store locked. The file
//! itself stays (removing it would let two runs lock two different files).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{
    check_key, IoStats, ObjectError, ObjectReader, ObjectStore, ObjectWriter, CHUNK_BYTES,
    LOCK_FILE, TEMP_PREFIX,
};
use taskq::error::Error;
use taskq::setting;

/// An object store rooted at a local directory.
#[derive(Debug)]
pub struct LocalStore {
    /// Canonical: absolute, no links.
    root: PathBuf,
    /// Numbers this process's temporary files.
    next_temp: AtomicU64,
    /// The locked [`LOCK_FILE`], once [`lock`](LocalStore::lock) succeeded.
    lock: Option<File>,
}

impl LocalStore {
    /// A store over the existing directory `root`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when `root` does not exist or cannot be resolved,
    /// [`Error::Config`] (`object_store`) when it is not a directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        let given = root.as_ref();
        let root = fs::canonicalize(given).map_err(|e| {
            Error::io(
                format!("cannot open object store root {}", given.display()),
                e,
            )
        })?;
        if !root.is_dir() {
            return Err(Error::config(
                setting::OBJECT_STORE,
                format!("{} is not a directory", given.display()),
            ));
        }
        Ok(LocalStore {
            root,
            next_temp: AtomicU64::new(0),
            lock: None,
        })
    }

    /// A store over `root`, creating the directory (and its parents) if needed.
    ///
    /// # Errors
    ///
    /// As [`open`](LocalStore::open), and [`Error::Io`] when it cannot be created.
    pub fn create(root: impl AsRef<Path>) -> Result<Self, Error> {
        let given = root.as_ref();
        fs::create_dir_all(given).map_err(|e| {
            Error::io(
                format!("cannot create object store root {}", given.display()),
                e,
            )
        })?;
        Self::open(given)
    }

    /// The root directory, canonicalized.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store for this process: an exclusive lock on [`LOCK_FILE`]
    /// in the root, held until this store is dropped (or the process exits),
    /// with this process's id written into the file. Take it before
    /// [`sweep_temp`](LocalStore::sweep_temp) and before writing. Taking it
    /// again on a store that holds it does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::StoreInUse`] at once (without waiting) when another process
    /// holds it, naming that process's id; [`Error::Io`] when the lock file
    /// cannot be opened, locked or written (a symbolic link there is refused,
    /// not followed).
    pub fn lock(&mut self) -> Result<(), Error> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = self.root.join(LOCK_FILE);
        let io = |what: &str, e| Error::io(format!("cannot {what} {}", path.display()), e);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o644).custom_flags(libc::O_NOFOLLOW);
        }
        let mut file = options
            .open(&path)
            .map_err(|e| io("open the store's lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::StoreInUse {
                    root: self.root.clone(),
                    holder: lock_holder(&path),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| io("write", e))?;
        self.lock = Some(file);
        Ok(())
    }

    /// Removes the temporary files of interrupted writes below `prefix` (a key
    /// prefix such as `variants`; `""` for the whole store) and returns how
    /// many. Links are not followed. Run it holding the store's
    /// [`lock`](LocalStore::lock), so that no other run writes to the store: a
    /// write in progress elsewhere would lose its temporary file and fail (as
    /// an I/O error, leaving its key untouched).
    ///
    /// # Errors
    ///
    /// [`ObjectError::InvalidKey`] for a bad prefix, [`ObjectError::Io`] when
    /// a directory cannot be listed or a file removed.
    pub fn sweep_temp(&self, prefix: &str) -> Result<u64, ObjectError> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            check_key(prefix)?;
            self.root.join(prefix)
        };
        match fs::symlink_metadata(&start) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(0),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(ObjectError::io(prefix, "inspect", e)),
        }
        let mut removed = 0;
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| ObjectError::io(prefix, "list", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ObjectError::io(prefix, "list", e))?;
                let kind = entry
                    .file_type()
                    .map_err(|e| ObjectError::io(prefix, "inspect", e))?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file()
                    && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(ObjectError::io(prefix, "remove a temporary file", e))
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Resolves `path` (below the root) through every link, and refuses it
    /// unless it stays below the root.
    fn resolve_inside(&self, key: &str, path: &Path) -> Result<PathBuf, ObjectError> {
        let resolved = fs::canonicalize(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::NotADirectory => {
                ObjectError::NotFound { key: key.into() }
            }
            _ => ObjectError::io(key, "resolve", e),
        })?;
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(ObjectError::OutsideRoot {
                key: key.into(),
                detail: format!(
                    "{} leads to {}, outside the store root {}",
                    path.display(),
                    resolved.display(),
                    self.root.display()
                ),
            })
        }
    }

    /// The directory that will hold `key`'s object (created as needed, every
    /// segment checked) and the object's file name.
    fn prepare_dir<'k>(&self, key: &'k str) -> Result<(PathBuf, &'k str), ObjectError> {
        check_key(key)?;
        let (parents, name) = match key.rsplit_once('/') {
            Some((parents, name)) => (Some(parents), name),
            None => (None, key),
        };
        let mut dir = self.root.clone();
        for segment in parents.into_iter().flat_map(|p| p.split('/')) {
            let next = dir.join(segment);
            // Two tries: a directory another worker creates between our look
            // and our mkdir is simply entered on the second look.
            let mut entered = None;
            for _ in 0..2 {
                match fs::symlink_metadata(&next) {
                    Ok(m) if m.is_dir() => {
                        entered = Some(next.clone());
                        break;
                    }
                    Ok(m) if m.file_type().is_symlink() => {
                        let target = self.resolve_inside(key, &next).map_err(|e| match e {
                            ObjectError::NotFound { .. } => ObjectError::OutsideRoot {
                                key: key.into(),
                                detail: format!(
                                    "{} is a link to nothing inside the store root",
                                    next.display()
                                ),
                            },
                            other => other,
                        })?;
                        if !target.is_dir() {
                            return Err(not_a_dir(key, &next));
                        }
                        entered = Some(target);
                        break;
                    }
                    Ok(_) => return Err(not_a_dir(key, &next)),
                    Err(e) if e.kind() == ErrorKind::NotFound => match fs::create_dir(&next) {
                        Ok(()) => {
                            entered = Some(next.clone());
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(ObjectError::io(key, "create a directory for", e)),
                    },
                    Err(e) => return Err(ObjectError::io(key, "inspect", e)),
                }
            }
            dir = entered.ok_or_else(|| {
                ObjectError::io(
                    key,
                    "create a directory for",
                    io::Error::other(format!("{} keeps changing", next.display())),
                )
            })?;
        }
        let target = dir.join(name);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(ObjectError::NotAnObject {
                    key: key.into(),
                    detail: format!("{} is a directory", target.display()),
                })
            }
            Ok(m) if m.file_type().is_symlink() => match self.resolve_inside(key, &target) {
                Ok(_) => {}
                Err(ObjectError::NotFound { .. }) => {
                    return Err(ObjectError::OutsideRoot {
                        key: key.into(),
                        detail: format!(
                            "{} is a link to nothing inside the store root",
                            target.display()
                        ),
                    })
                }
                Err(e) => return Err(e),
            },
            _ => {}
        }
        Ok((dir, name))
    }
}

/// Who holds the lock file at `path`: `pid N` as its holder wrote it. The
/// holder writes its id just after locking, so an empty file is read again
/// for a moment before giving up.
fn lock_holder(path: &Path) -> String {
    for _ in 0..20 {
        if let Some(pid) = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            return format!("pid {pid}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    "another process".into()
}

fn not_a_dir(key: &str, path: &Path) -> ObjectError {
    ObjectError::NotAnObject {
        key: key.into(),
        detail: format!("{} is not a directory", path.display()),
    }
}

impl ObjectStore for LocalStore {
    fn open(&self, key: &str) -> Result<Box<dyn ObjectReader>, ObjectError> {
        let started = Instant::now();
        check_key(key)?;
        let path = self.resolve_inside(key, &self.root.join(key))?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ObjectError::NotFound { key: key.into() },
            _ => ObjectError::io(key, "open", e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| ObjectError::io(key, "inspect", e))?;
        if !meta.is_file() {
            return Err(ObjectError::NotAnObject {
                key: key.into(),
                detail: format!("{} is not a regular file", path.display()),
            });
        }
        let file = ChunkedFile {
            file,
            stats: IoStats {
                bytes: 0,
                io_ns: elapsed_ns(started),
            },
        };
        Ok(Box::new(LocalReader(BufReader::with_capacity(
            CHUNK_BYTES,
            file,
        ))))
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let started = Instant::now();
        let (dir, name) = self.prepare_dir(key)?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            self.next_temp.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| ObjectError::io(key, "create a temporary file for", e))?;
        let file = ChunkedFile {
            file,
            stats: IoStats {
                bytes: 0,
                io_ns: elapsed_ns(started),
            },
        };
        Ok(Box::new(LocalWriter {
            key: key.into(),
            out: Some(BufWriter::with_capacity(CHUNK_BYTES, file)),
            temp,
            target: dir.join(name),
            dir,
        }))
    }
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A file whose every read and write moves at most [`CHUNK_BYTES`], counted
/// and timed.
struct ChunkedFile {
    file: File,
    stats: IoStats,
}

impl ChunkedFile {
    fn timed<T>(&mut self, f: impl FnOnce(&mut File) -> io::Result<T>) -> io::Result<T> {
        let started = Instant::now();
        let r = f(&mut self.file);
        self.stats.io_ns += elapsed_ns(started);
        r
    }
}

impl Read for ChunkedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(CHUNK_BYTES);
        let n = self.timed(|f| f.read(&mut buf[..len]))?;
        self.stats.bytes += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Write for ChunkedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(CHUNK_BYTES);
        let n = self.timed(|f| f.write(&buf[..len]))?;
        self.stats.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct LocalReader(BufReader<ChunkedFile>);

impl Read for LocalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::BufRead for LocalReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.0.consume(amt)
    }
}

impl Seek for LocalReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl ObjectReader for LocalReader {
    fn stats(&self) -> IoStats {
        self.0.get_ref().stats
    }
}

struct LocalWriter {
    key: String,
    /// `None` once committed.
    out: Option<BufWriter<ChunkedFile>>,
    temp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

impl LocalWriter {
    fn out(&mut self) -> io::Result<&mut BufWriter<ChunkedFile>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("object already committed"))
    }
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(mut self: Box<Self>) -> Result<IoStats, ObjectError> {
        let key = self.key.clone();
        let out = self
            .out
            .take()
            .ok_or_else(|| ObjectError::io(&key, "commit", io::Error::other("committed twice")))?;
        let mut file = out
            .into_inner()
            .map_err(|e| ObjectError::io(&key, "write", e.into_error()))?;
        file.timed(|f| f.sync_all())
            .map_err(|e| ObjectError::io(&key, "sync", e))?;
        let started = Instant::now();
        // A failed rename leaves the temporary file; `Drop` removes it.
        fs::rename(&self.temp, &self.target)
            .map_err(|e| ObjectError::io(&key, "rename into place", e))?;
        // From here the object is in place: nothing for `Drop` to remove.
        self.temp = PathBuf::new();
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ObjectError::io(&key, "sync the directory of", e))?;
        file.stats.io_ns += elapsed_ns(started);
        Ok(file.stats)
    }

    fn stats(&self) -> IoStats {
        self.out
            .as_ref()
            .map(|o| o.get_ref().stats)
            .unwrap_or_default()
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Uncommitted (or failed): the temporary file goes; the key is untouched.
        if !self.temp.as_os_str().is_empty() {
            drop(self.out.take());
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn temp_files(root: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    dirs.push(e.path());
                } else if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    found.push(e.path());
                }
            }
        }
        found
    }

    #[test]
    fn round_trip_in_chunks() {
        let (dir, store) = store();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let written = store.put("a/b/c.bin", &mut &data[..]).unwrap();
        assert_eq!(written.bytes, data.len() as u64);
        assert_eq!(fs::read(dir.path().join("a/b/c.bin")).unwrap(), data);
        let mut r = store.open("a/b/c.bin").unwrap();
        // The buffer never holds more than one chunk.
        assert!(r.fill_buf().unwrap().len() <= CHUNK_BYTES);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(r.stats().bytes, data.len() as u64);
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn large_writes_reach_the_file_in_chunks() {
        let mut f = ChunkedFile {
            file: tempfile::tempfile().unwrap(),
            stats: IoStats::default(),
        };
        let data = vec![7u8; 3 * CHUNK_BYTES + 5];
        assert_eq!(f.write(&data).unwrap(), CHUNK_BYTES);
        let mut buf = vec![0u8; 4 * CHUNK_BYTES];
        f.seek(SeekFrom::Start(0)).unwrap();
        assert_eq!(f.read(&mut buf).unwrap(), CHUNK_BYTES);
    }

    #[test]
    fn nothing_is_visible_before_commit_and_a_dropped_writer_leaves_nothing() {
        let (dir, store) = store();
        store.put("k", &mut &b"old"[..]).unwrap();
        let mut w = store.create("k").unwrap();
        w.write_all(&vec![1u8; 200_000]).unwrap();
        assert_eq!(fs::read(dir.path().join("k")).unwrap(), b"old");
        assert_eq!(temp_files(dir.path()).len(), 1);
        drop(w);
        assert_eq!(fs::read(dir.path().join("k")).unwrap(), b"old");
        assert!(temp_files(dir.path()).is_empty());
        let mut w = store.create("k").unwrap();
        w.write_all(b"new").unwrap();
        w.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("k")).unwrap(), b"new");
    }

    #[test]
    fn sweep_removes_only_temporary_files() {
        let (dir, store) = store();
        store.put("variants/1x1/a", &mut &b"x"[..]).unwrap();
        let leftover = dir.path().join("variants/1x1/.taskq-tmp-1-0");
        fs::write(&leftover, b"torn").unwrap();
        fs::write(dir.path().join(".taskq-tmp-9-9"), b"outside the prefix").unwrap();
        assert_eq!(store.sweep_temp("variants").unwrap(), 1);
        assert!(!leftover.exists());
        assert!(dir.path().join("variants/1x1/a").exists());
        assert_eq!(store.sweep_temp("").unwrap(), 1);
        assert_eq!(store.sweep_temp("missing").unwrap(), 0);
    }

    #[test]
    fn a_second_lock_on_a_store_fails_at_once_naming_the_holder() {
        let (dir, mut first) = store();
        first.lock().unwrap();
        first.lock().unwrap();
        let pid = std::process::id();
        assert_eq!(
            fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            format!("{pid}\n")
        );
        // A second store value opens its own file description: locked out,
        // as another process would be.
        let mut second = LocalStore::open(dir.path()).unwrap();
        let err = second.lock().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "store {} is in use by pid {pid} (another taskq run); wait for it to finish",
                first.root().display()
            )
        );
        drop(first);
        second.lock().unwrap();
        assert_eq!(store_key_error(&second), "invalid_key");
    }

    fn store_key_error(store: &LocalStore) -> &'static str {
        store.create(LOCK_FILE).err().unwrap().kind()
    }

    #[test]
    fn missing_and_misplaced_objects() {
        let (_dir, store) = store();
        assert_eq!(store.open("nope").err().unwrap().kind(), "not_found");
        store.put("file", &mut &b"x"[..]).unwrap();
        assert_eq!(store.open("file/below").err().unwrap().kind(), "not_found");
        assert_eq!(
            store.create("file/below").err().unwrap().kind(),
            "not_an_object"
        );
        store.put("dir/x", &mut &b"x"[..]).unwrap();
        assert_eq!(store.open("dir").err().unwrap().kind(), "not_an_object");
        assert_eq!(store.create("dir").err().unwrap().kind(), "not_an_object");
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_the_root_work_and_links_out_are_refused() {
        use std::os::unix::fs::symlink;
        let (dir, store) = store();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = dir.path();
        store.put("real/a", &mut &b"a"[..]).unwrap();
        symlink(root.join("real"), root.join("alias")).unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink(outside.path().join("secret"), root.join("secret")).unwrap();
        symlink("../nowhere", root.join("dangling")).unwrap();

        let mut s = String::new();
        store
            .open("alias/a")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "a");
        store.put("alias/b", &mut &b"b"[..]).unwrap();
        assert!(root.join("real/b").exists());

        for key in ["out/secret", "secret"] {
            assert_eq!(store.open(key).err().unwrap().kind(), "outside_root");
        }
        for key in [
            "out/new",
            "out/deeper/new",
            "secret",
            "dangling/x",
            "dangling",
        ] {
            assert_eq!(
                store.create(key).err().unwrap().kind(),
                "outside_root",
                "{key}"
            );
        }
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            1,
            "nothing was created outside the root"
        );
        assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"s");
    }
}
