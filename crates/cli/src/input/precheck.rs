//! Opening a task file by path (`-` is stdin), and the full pass that counts
//! its records before a run.
//!
//! Invariant: both name the input with [`source_name`], so an error from the
//! precheck and one from the run name the same file.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::error::Location;
use super::{InputError, InputErrorKind, InputFormat, ReaderOptions, Record, TaskReader};

/// Read buffer used by [`open_path`].
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// How messages name the task file at `path`: its path, or `<stdin>` for `-`.
pub fn source_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Opens a task file for streaming; `-` is stdin (named `<stdin>` in errors).
///
/// # Errors
///
/// [`InputErrorKind::Open`] when the file cannot be opened or is a directory,
/// displayed like `tasks.json: cannot open: No such file or directory (os error 2)`.
pub fn open_path(
    path: &Path,
    options: ReaderOptions,
) -> Result<TaskReader<Box<dyn BufRead + Send>>, InputError> {
    open_path_as(path, &source_name(path), options)
}

/// As [`open_path`], naming the input `name` in errors (a task file copied
/// from an object store is named by its object's address).
///
/// # Errors
///
/// As [`open_path`].
pub fn open_path_as(
    path: &Path,
    name: &str,
    options: ReaderOptions,
) -> Result<TaskReader<Box<dyn BufRead + Send>>, InputError> {
    let name = name.to_owned();
    if path == Path::new("-") {
        let stdin = BufReader::with_capacity(READ_BUFFER_BYTES, io::stdin());
        return Ok(TaskReader::new(Box::new(stdin), name, options));
    }
    let open_error = |e: io::Error| InputError {
        source_name: name.clone(),
        at: Location::default(),
        kind: InputErrorKind::Open(e),
    };
    let file = File::open(path).map_err(open_error)?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(open_error(io::Error::other("is a directory")));
    }
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    Ok(TaskReader::new(Box::new(reader), name, options))
}

/// What a full pass over a task file found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precheck {
    /// Valid tasks.
    pub tasks: u64,
    /// Invalid records: well-formed JSON that is not a valid task, and NDJSON
    /// lines that are not JSON records.
    pub invalid: u64,
    /// The format read (detected, or forced).
    pub format: InputFormat,
}

/// Reads a whole task file once, counting valid and invalid records, so that a
/// broken file is refused before any work starts. A broken NDJSON line is
/// counted as invalid, not refused; with [`ReaderOptions::strict`] the first
/// invalid record of any kind is the error.
///
/// Stdin (`-`) can be read only once: a precheck of `-` consumes it.
///
/// # Errors
///
/// The first [`InputError`] of the file, or of opening it.
pub fn precheck_path(path: &Path, options: ReaderOptions) -> Result<Precheck, InputError> {
    precheck_path_as(path, &source_name(path), options)
}

/// As [`precheck_path`], naming the input `name` in errors.
///
/// # Errors
///
/// As [`precheck_path`].
pub fn precheck_path_as(
    path: &Path,
    name: &str,
    options: ReaderOptions,
) -> Result<Precheck, InputError> {
    let mut reader = open_path_as(path, name, options)?;
    let (mut tasks, mut invalid) = (0, 0);
    for record in &mut reader {
        match record? {
            Record::Task { .. } => tasks += 1,
            Record::Invalid { .. } => invalid += 1,
        }
    }
    Ok(Precheck {
        tasks,
        invalid,
        format: reader.format().unwrap_or(options.format),
    })
}
