//! Streaming reader of task files: a JSON array of task objects, or NDJSON.
//!
//! Memory use does not depend on the size of the file: only the record being read
//! is held, in one reused buffer of at most [`ReaderOptions::max_record_bytes`].
//!
//! # How a record is read
//!
//! 1. A hand-written byte scanner walks the [`BufRead`]'s buffer and finds where
//!    each top-level record ends: an element of the array, or a line of NDJSON. It
//!    tracks strings, escapes and bracket depth, counts lines exactly, and copies
//!    only that record's bytes into the reused buffer.
//! 2. The record is checked to be UTF-8 and parsed with `serde_json` into a
//!    tolerant raw form: each known field accepts any JSON type and remembers what
//!    it got, unknown fields are skipped with [`IgnoredAny`](serde::de::IgnoredAny).
//! 3. The raw form is validated into a [`Task`]. A record that is well-formed JSON
//!    but not an acceptable task becomes [`Record::Invalid`], not a file error.
//!
//! In NDJSON each line stands alone: a line that is not UTF-8, not JSON, nested
//! past the depth limit or longer than the size limit is one [`Record::Invalid`]
//! too ([`TaskError::Malformed`], naming the column and what was expected). The
//! reader goes on at the next newline; the rest of an over-long line is skipped
//! as it streams by, never buffered.
//!
//! Anything that makes the rest of the file unreadable (in a JSON array: not
//! UTF-8, broken JSON, a truncation, trailing data, a record over the size or
//! depth limit; in any format: an I/O error, or a file that is neither format)
//! is an [`InputError`] that names the file, the line and what was expected,
//! like `tasks.json:17:5: expected ',' or ']' after a task, found '}'`. With
//! [`ReaderOptions::strict`], the first invalid record of any kind is an
//! [`InputError`] as well. After an error the reader yields nothing more.
//!
//! # Layout
//!
//! - `mod.rs`: the public types ([`TaskReader`], [`Record`], [`ReaderOptions`],
//!   [`InputFormat`]) and the state machine that walks a file record by record.
//! - `scan.rs`: the byte layer: the source with its BOM handling, the cursor,
//!   the element scanner, the word-at-a-time byte searches, the depth check.
//! - `array.rs`: copying one element of a JSON array.
//! - `ndjson.rs`: reading one NDJSON line, and resyncing after a broken one.
//! - `raw.rs`: the tolerant raw form of a record, its validation into a
//!   [`Task`], and the rewriting of numbers beyond the range of an `f64`.
//! - `error.rs`: [`InputError`], its position and the escaping of input text
//!   shown in messages.
//! - `precheck.rs`: [`open_path`], [`precheck_path`] and [`source_name`].

mod array;
mod error;
mod ndjson;
mod precheck;
mod raw;
mod scan;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::BufRead;

use serde::Serialize;

use taskq::task::{Task, TaskError};

pub use error::{InputError, InputErrorKind};
pub use precheck::{
    open_path, open_path_as, precheck_path, precheck_path_as, source_name, Precheck,
};

use error::{as_format_error, escape_invisible, Location};
use scan::{Cursor, Scan, Source};

/// Default for [`ReaderOptions::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Default for [`ReaderOptions::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The layout of a task file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Decide from the first byte after an optional BOM and whitespace: `[` is a
    /// JSON array, `{` is NDJSON. Any other first byte is a file error (a PNG or
    /// a CSV passed by mistake is refused, not read as lines of invalid
    /// records); an NDJSON file whose first line is broken is read with
    /// [`InputFormat::Ndjson`].
    #[default]
    Auto,
    /// One JSON array whose elements are task objects.
    Json,
    /// One task object per line; blank lines are skipped. An empty file holds no
    /// tasks. A line that is not a JSON record is one invalid record.
    Ndjson,
}

/// How a [`TaskReader`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderOptions {
    /// The layout to expect; [`InputFormat::Auto`] detects it.
    pub format: InputFormat,
    /// The largest record (array element or NDJSON line) accepted, in bytes,
    /// found without buffering more than this. A longer array element is a
    /// file error; a longer NDJSON line is one invalid record, and the rest of
    /// it is skipped.
    pub max_record_bytes: usize,
    /// The deepest nesting of arrays and objects accepted inside a record; the
    /// task object itself is level 1. Keep it below 128, serde_json's own limit.
    pub max_depth: usize,
    /// Stop at the first invalid record: a record that is not a valid task
    /// ([`InputErrorKind::InvalidTask`]) or an NDJSON line that is not a JSON
    /// record (its syntax, UTF-8, size or depth error, as in a JSON array) is an
    /// [`InputError`] instead of a [`Record::Invalid`], and nothing follows it.
    pub strict: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            format: InputFormat::Auto,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            strict: false,
        }
    }
}

/// One record of a task file: a valid task, or the reason it is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// The record is a valid task.
    Task {
        /// The 1-based line where the record starts.
        line: u64,
        /// The 0-based position of the record in the file.
        index: u64,
        /// The task.
        task: Task,
    },
    /// The record is not a valid task: well-formed JSON that is not an
    /// acceptable task, or an NDJSON line that is not a JSON record at all
    /// ([`TaskError::Malformed`]).
    Invalid {
        /// The 1-based line where the record starts.
        line: u64,
        /// The 0-based position of the record in the file.
        index: u64,
        /// Which field is wrong, and how.
        error: TaskError,
    },
}

impl Record {
    /// The 1-based line where the record starts.
    pub fn line(&self) -> u64 {
        match self {
            Record::Task { line, .. } | Record::Invalid { line, .. } => *line,
        }
    }

    /// The 0-based position of the record in the file.
    pub fn index(&self) -> u64 {
        match self {
            Record::Task { index, .. } | Record::Invalid { index, .. } => *index,
        }
    }
}

/// Where the reader is between records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    Start,
    /// After `[`: a task or `]`.
    ArrayOpen,
    /// After a task: `,` or `]`.
    ArrayAfterTask,
    /// After `,`: a task.
    ArrayAfterComma,
    /// After `]`: whitespace, then end of file.
    ArrayClosed,
    /// NDJSON: the next non-blank line, or end of file.
    Lines,
    /// Finished, or failed.
    Done,
}

/// Streams [`Record`]s from a task file.
///
/// Yields `Ok(Record)` for each record, then `None`; or `Err(InputError)` once, at
/// the first file-level problem, and `None` after it.
///
/// # Examples
///
/// ```
/// use taskq_cli::input::{ReaderOptions, Record, TaskReader};
/// let data = br#"[{"image_key": "img/a.jpg", "size": "200x200"}]"#;
/// let mut reader = TaskReader::new(&data[..], "tasks.json", ReaderOptions::default());
/// match reader.next() {
///     Some(Ok(Record::Task { task, .. })) => assert_eq!(task.idempotency_key(), "img/a.jpg:200x200"),
///     other => panic!("{other:?}"),
/// }
/// assert!(reader.next().is_none());
/// ```
pub struct TaskReader<R: BufRead> {
    reader: Source<R>,
    source: String,
    options: ReaderOptions,
    format: Option<InputFormat>,
    state: State,
    /// The bytes of the record being parsed; reused, never over the record limit.
    buf: Vec<u8>,
    cur: Cursor,
    scan: Scan,
    /// Records seen so far (valid or not).
    index: u64,
    /// The line of the opening `[`, for truncation messages.
    array_line: u64,
}

impl<R: BufRead> fmt::Debug for TaskReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskReader")
            .field("source", &self.source)
            .field("format", &self.format)
            .field("line", &self.cur.line)
            .field("records", &self.index)
            .finish_non_exhaustive()
    }
}

impl<R: BufRead> TaskReader<R> {
    /// A reader over `reader`; `source` names it in errors (a path, or `<stdin>`).
    pub fn new(reader: R, source: impl Into<String>, options: ReaderOptions) -> Self {
        let format = match options.format {
            InputFormat::Auto => None,
            forced => Some(forced),
        };
        TaskReader {
            reader: Source::new(reader),
            source: source.into(),
            options,
            format,
            state: State::Start,
            buf: Vec::new(),
            cur: Cursor::new(),
            scan: Scan::default(),
            index: 0,
            array_line: 0,
        }
    }

    /// The format being read: the forced one, or the detected one once the first
    /// record has been asked for; `None` before detection.
    pub fn format(&self) -> Option<InputFormat> {
        self.format
    }

    /// The name of the input used in errors.
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.cur.offset
    }

    #[cfg(test)]
    fn record_buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn advance(&mut self, n: usize) {
        self.reader.consume(n);
        self.cur.offset += n as u64;
    }

    fn peek(&mut self) -> Result<Option<u8>, InputError> {
        match self.reader.fill() {
            Ok(chunk) => Ok(chunk.first().copied()),
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// Skips JSON whitespace; returns the next byte (not consumed), `None` at EOF.
    fn skip_whitespace(&mut self) -> Result<Option<u8>, InputError> {
        loop {
            let chunk = match self.reader.fill() {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.read_error(e)),
            };
            if chunk.is_empty() {
                return Ok(None);
            }
            let mut found = None;
            let mut i = 0;
            while i < chunk.len() {
                match chunk[i] {
                    b' ' | b'\t' | b'\r' => {}
                    b'\n' => self.cur.newline(self.cur.offset + i as u64),
                    b => {
                        found = Some(b);
                        break;
                    }
                }
                i += 1;
            }
            self.advance(i);
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Describes the next character for an error message (`'}'`, `end of file`),
    /// consuming it if it is not ASCII; `Err` when it is not UTF-8.
    fn describe_next(&mut self) -> Result<String, InputError> {
        let (line, column) = self.cur.here();
        let Some(first) = self.peek()? else {
            return Ok("end of file".to_owned());
        };
        if first.is_ascii() {
            return Ok(if first.is_ascii_graphic() || first == b' ' {
                format!("'{}'", first as char)
            } else {
                format!("byte 0x{first:02X}")
            });
        }
        // Collect the lead byte and up to three continuation bytes, then decode.
        let mut bytes = vec![first];
        self.advance(1);
        let want = match first {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        while bytes.len() < want {
            match self.peek()? {
                Some(b) if b & 0xC0 == 0x80 => {
                    bytes.push(b);
                    self.advance(1);
                }
                _ => break,
            }
        }
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(format!("'{}'", escape_invisible(s))),
            Err(_) => Err(self.error(line, column, InputErrorKind::NotUtf8(first))),
        }
    }

    /// A syntax error at the next character: `{expected}, found {it}`.
    fn unexpected(&mut self, expected: &str) -> InputError {
        let (line, column) = self.cur.here();
        match self.describe_next() {
            Ok(found) => self.error(
                line,
                column,
                InputErrorKind::Syntax(format!("{expected}, found {found}")),
            ),
            Err(e) => e,
        }
    }

    /// Skips the BOM, detects (or checks) the format, consumes an opening `[`.
    fn start(&mut self) -> Result<(), InputError> {
        self.skip_bom()?;
        let first = self.skip_whitespace()?;
        let format = match (self.options.format, first) {
            (InputFormat::Ndjson, _) => InputFormat::Ndjson,
            (_, Some(b'[')) => InputFormat::Json,
            (InputFormat::Auto, Some(b'{')) => InputFormat::Ndjson,
            (InputFormat::Json, _) => {
                let e = self.unexpected("expected '[' to start a JSON array of task objects");
                return Err(as_format_error(e));
            }
            (InputFormat::Auto, _) => {
                let e = self.unexpected(
                    "expected a JSON array of task objects or NDJSON (one object per line)",
                );
                return Err(as_format_error(e));
            }
        };
        self.format = Some(format);
        if format == InputFormat::Json {
            self.array_line = self.cur.line;
            self.advance(1);
            self.state = State::ArrayOpen;
        } else {
            self.state = State::Lines;
        }
        Ok(())
    }

    /// The next record, `None` at a clean end.
    fn step(&mut self) -> Result<Option<Record>, InputError> {
        loop {
            match self.state {
                State::Start => self.start()?,
                State::ArrayOpen | State::ArrayAfterTask | State::ArrayAfterComma => {
                    let state = self.state;
                    let Some(b) = self.skip_whitespace()? else {
                        let expected = match state {
                            State::ArrayOpen => "a task or ']'",
                            State::ArrayAfterTask => "',' or ']'",
                            _ => "a task after ','",
                        };
                        let (line, column) = self.cur.here();
                        let message = format!(
                            "the task array opened on line {} is not closed (expected {expected})",
                            self.array_line
                        );
                        return Err(self.error(line, column, InputErrorKind::Truncated(message)));
                    };
                    match (state, b) {
                        (State::ArrayAfterTask, b',') => {
                            self.advance(1);
                            self.state = State::ArrayAfterComma;
                        }
                        (State::ArrayOpen | State::ArrayAfterTask, b']') => {
                            self.advance(1);
                            self.state = State::ArrayClosed;
                        }
                        (State::ArrayAfterTask, _) => {
                            return Err(self.unexpected("expected ',' or ']' after a task"));
                        }
                        (_, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                            self.state = State::ArrayAfterTask;
                            return self.read_element(b).map(Some);
                        }
                        (State::ArrayOpen, _) => {
                            return Err(self.unexpected("expected a task object or ']' after '['"));
                        }
                        (_, b']') => {
                            return Err(self.unexpected(
                                "expected a task object after ',' (no trailing comma allowed)",
                            ));
                        }
                        (_, _) => {
                            return Err(self.unexpected("expected a task object after ','"));
                        }
                    }
                }
                State::ArrayClosed => {
                    if self.skip_whitespace()?.is_none() {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    let (line, column) = self.cur.here();
                    let found = self.describe_next()?;
                    let message = format!(
                        "unexpected {found} after the closing ']' of the task array \
                         (only whitespace may follow it)"
                    );
                    return Err(self.error(line, column, InputErrorKind::TrailingData(message)));
                }
                State::Lines => {
                    if self.skip_whitespace()?.is_none() {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    return self.read_line().map(Some);
                }
                State::Done => return Ok(None),
            }
        }
    }
}

impl<R: BufRead> Iterator for TaskReader<R> {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(Record::Invalid { line, error, .. })) if self.options.strict => {
                self.state = State::Done;
                Some(Err(InputError {
                    source_name: self.source.clone(),
                    at: Location {
                        line: Some(line),
                        column: None,
                    },
                    kind: InputErrorKind::InvalidTask(error),
                }))
            }
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
