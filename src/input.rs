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
//!    it got, unknown fields are skipped with [`IgnoredAny`].
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

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::ops::Range;
use std::path::Path;

use compact_str::{CompactString, ToCompactString};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::task::{default_idempotency_key, unix_millis, validate_key, Size, Task, TaskError};

/// Default for [`ReaderOptions::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Default for [`ReaderOptions::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Read buffer used by [`open_path`].
const READ_BUFFER_BYTES: usize = 256 * 1024;

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

/// Why a task file cannot be read further, and where.
///
/// Displays as `{file}:{line}:{column}: {what}` (line and column when known,
/// both 1-based; columns count characters).
#[derive(Debug, thiserror::Error)]
#[error("{source_name}{at}: {kind}")]
pub struct InputError {
    source_name: String,
    at: Location,
    kind: InputErrorKind,
}

impl InputError {
    /// The name of the input, as given to [`TaskReader::new`] (`<stdin>` for stdin).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The 1-based line of the problem, when it is tied to one.
    pub fn line(&self) -> Option<u64> {
        self.at.line
    }

    /// The 1-based column (in characters) of the problem, when known.
    pub fn column(&self) -> Option<u64> {
        self.at.column
    }

    /// What went wrong.
    pub fn kind(&self) -> &InputErrorKind {
        &self.kind
    }
}

/// The class of an [`InputError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputErrorKind {
    /// The file could not be opened.
    #[error("cannot open: {0}")]
    Open(io::Error),
    /// Reading failed part way.
    #[error("read error: {0}")]
    Read(io::Error),
    /// The file is neither a JSON array nor NDJSON (or not the forced format).
    #[error("{0}")]
    Format(String),
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8 (byte 0x{0:02X}); task files must be UTF-8 text")]
    NotUtf8(u8),
    /// A record or the array around the records is not valid JSON.
    #[error("{0}")]
    Syntax(String),
    /// The file ends before the array or a record is closed.
    #[error("unexpected end of file: {0}")]
    Truncated(String),
    /// Something other than whitespace follows the closing `]`.
    #[error("{0}")]
    TrailingData(String),
    /// A record is longer than [`ReaderOptions::max_record_bytes`].
    #[error(
        "a task record longer than {limit} bytes starts here; \
         each task must fit in {limit} bytes (max_record_bytes)"
    )]
    RecordTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A record nests arrays or objects deeper than [`ReaderOptions::max_depth`].
    #[error("task nests arrays/objects deeper than {limit} levels (max_depth)")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// With [`ReaderOptions::strict`]: a well-formed record that is not a valid
    /// task.
    #[error("invalid task: {0} (strict: the first invalid record fails the run)")]
    InvalidTask(TaskError),
}

/// `:line:column`, `:line` or nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Location {
    line: Option<u64>,
    column: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Where the scanner is: the offset of the next unconsumed byte and its line.
///
/// Columns are derived: bytes since the line start, less the UTF-8 continuation
/// bytes among them.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    offset: u64,
    line: u64,
    line_start: u64,
    line_continuations: u64,
}

impl Cursor {
    fn new() -> Self {
        Cursor {
            offset: 0,
            line: 1,
            line_start: 0,
            line_continuations: 0,
        }
    }

    /// Records a `\n` at absolute offset `at`.
    #[inline]
    fn newline(&mut self, at: u64) {
        self.line += 1;
        self.line_start = at + 1;
        self.line_continuations = 0;
    }

    /// Records a non-ASCII byte (only continuation bytes shift columns).
    #[inline]
    fn non_ascii(&mut self, b: u8) {
        if b & 0xC0 == 0x80 {
            self.line_continuations += 1;
        }
    }

    /// The 1-based character column of absolute offset `at` on the current line.
    fn column_at(&self, at: u64) -> u64 {
        at.saturating_sub(self.line_start)
            .saturating_sub(self.line_continuations)
            + 1
    }

    fn here(&self) -> (u64, u64) {
        (self.line, self.column_at(self.offset))
    }
}

/// String and bracket state while a record is copied.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    in_string: bool,
    escape: bool,
    depth: usize,
}

/// How a chunk scan ended early.
enum ScanStop {
    /// Nesting went past the limit at the bracket at this index of the chunk,
    /// which is at this line and column.
    TooDeep { at: usize, line: u64, column: u64 },
}

/// Bytes that end the fast skip inside a string: `"`, `\`, controls, non-ASCII.
static STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i == b'"' as usize || i == b'\\' as usize || i < 0x20 || i >= 0x80;
        i += 1;
    }
    t
};

/// Bytes that end the fast skip outside strings: quotes, brackets, `\n`, non-ASCII.
static STRUCTURE_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = matches!(b, b'"' | b'{' | b'[' | b'}' | b']' | b'\n') || b >= 0x80;
        i += 1;
    }
    t
};

/// Scans `chunk` (which starts at `cur.offset`) for the end of the current array
/// element.
///
/// Returns how many bytes belong to the element and whether it ended: after the
/// byte that closes it at depth 0, or after a control byte inside a string
/// (invalid JSON, left for serde_json to report with its position).
#[inline]
fn scan_chunk(
    scan: &mut Scan,
    cur: &mut Cursor,
    chunk: &[u8],
    max_depth: usize,
) -> Result<(usize, bool), ScanStop> {
    let n = chunk.len();
    let base = cur.offset;
    let mut i = 0;
    while i < n {
        if scan.in_string {
            if scan.escape {
                scan.escape = false;
                if !STRING_SPECIAL[chunk[i] as usize] || matches!(chunk[i], b'"' | b'\\') {
                    i += 1;
                    continue;
                }
                // A control or non-ASCII byte after '\\': handled below.
            } else {
                i = skip_plain_string_bytes(chunk, i);
                if i == n {
                    break;
                }
            }
            let b = chunk[i];
            i += 1;
            match b {
                b'"' => {
                    scan.in_string = false;
                    if scan.depth == 0 {
                        return Ok((i, true));
                    }
                }
                b'\\' => scan.escape = true,
                0..=0x1F => {
                    if b == b'\n' {
                        cur.newline(base + i as u64 - 1);
                    }
                    return Ok((i, true));
                }
                _ => cur.non_ascii(b),
            }
        } else {
            while i < n && !STRUCTURE_SPECIAL[chunk[i] as usize] {
                i += 1;
            }
            if i == n {
                break;
            }
            let b = chunk[i];
            match b {
                b'"' => scan.in_string = true,
                b'{' | b'[' => {
                    scan.depth += 1;
                    if scan.depth > max_depth {
                        return Err(ScanStop::TooDeep {
                            at: i,
                            line: cur.line,
                            column: cur.column_at(base + i as u64),
                        });
                    }
                }
                b'}' | b']' => {
                    scan.depth = scan.depth.saturating_sub(1);
                    if scan.depth == 0 {
                        return Ok((i + 1, true));
                    }
                }
                b'\n' => cur.newline(base + i as u64),
                _ => cur.non_ascii(b),
            }
            i += 1;
        }
    }
    Ok((n, false))
}

/// Eight copies of a byte, one per lane of a `u64`.
const LANES_LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of each lane.
const LANES_HI: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit lies in the lowest lane of `x` equal to `b` (lanes
/// above the first match may be flagged spuriously; only the lowest is exact).
#[inline]
fn lanes_equal(x: u64, b: u8) -> u64 {
    let y = x ^ (LANES_LO * u64::from(b));
    y.wrapping_sub(LANES_LO) & !y & LANES_HI
}

/// The first index from `i` whose byte is in [`STRING_SPECIAL`], eight bytes at a
/// time; `chunk.len()` when there is none.
#[inline]
fn skip_plain_string_bytes(chunk: &[u8], mut i: usize) -> usize {
    while let Some(word) = chunk.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // '"', '\\', bytes below 0x20 (same borrow caveat as `lanes_equal`), and
        // bytes from 0x80 (exact).
        let below_space = x.wrapping_sub(LANES_LO * 0x20) & !x & LANES_HI;
        let special = lanes_equal(x, b'"') | lanes_equal(x, b'\\') | below_space | (x & LANES_HI);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < chunk.len() && !STRING_SPECIAL[chunk[i] as usize] {
        i += 1;
    }
    i
}

/// The offset of the first `needle` in `hay`, eight bytes at a time.
#[inline]
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let mut at = 0;
    for word in hay.chunks_exact(8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let hits = lanes_equal(x, needle);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    hay[at..].iter().position(|&b| b == needle).map(|i| at + i)
}

/// The offset in `record` of the bracket that first nests deeper than
/// `max_depth`, if any, skipping brackets inside strings.
fn too_deep_at(record: &[u8], max_depth: usize) -> Option<usize> {
    // Cheap bound first: without more opening brackets than the limit, no
    // nesting can pass it.
    // `b | 0x20 == b'{'` holds exactly for '{' and '['. Counting in u8 lanes per
    // 128-byte block lets the compiler vectorise the loop.
    let opening: usize = record
        .chunks(128)
        .map(|block| {
            let count = block
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b | 0x20 == b'{'));
            usize::from(count)
        })
        .sum();
    if opening <= max_depth {
        return None;
    }
    let (mut depth, mut in_string, mut escape) = (0usize, false, false);
    for (i, &b) in record.iter().enumerate() {
        if in_string {
            match (escape, b) {
                (true, _) => escape = false,
                (false, b'\\') => escape = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Some(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The input as the scanner sees it: the caller's [`BufRead`] with
/// `Interrupted` retried, its end latched, and room to put back the first bytes
/// of something that looked like a byte-order mark but was not one.
struct Source<R> {
    inner: R,
    /// Bytes put back in front of `inner`: `back[back_at..back_len]`.
    back: [u8; 2],
    back_at: usize,
    back_len: usize,
    /// `inner` returned an empty buffer: the input has ended, and it is not read
    /// again (on a terminal, what is typed after Ctrl-D is not part of it).
    ended: bool,
}

impl<R: BufRead> Source<R> {
    fn new(inner: R) -> Self {
        Source {
            inner,
            back: [0; 2],
            back_at: 0,
            back_len: 0,
            ended: false,
        }
    }

    /// The next bytes, without consuming them; empty at the end of the input.
    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.back_at < self.back_len {
            return Ok(&self.back[self.back_at..self.back_len]);
        }
        if self.ended {
            return Ok(&[]);
        }
        loop {
            match self.inner.fill_buf() {
                Ok([]) => {
                    self.ended = true;
                    return Ok(&[]);
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // The buffer holds data now; this returns it without reading again.
        // (Returning the first call's slice from inside the loop is refused by
        // the borrow checker.)
        self.inner.fill_buf()
    }

    /// Consumes `n` bytes of what [`Source::fill`] returned.
    fn consume(&mut self, n: usize) {
        let back = n.min(self.back_len - self.back_at);
        self.back_at += back;
        if n > back {
            self.inner.consume(n - back);
        }
    }

    /// Puts `bytes` (at most two, consumed last) back in front of the input.
    fn unread(&mut self, bytes: &[u8]) {
        debug_assert!(self.back_at == self.back_len && bytes.len() <= self.back.len());
        self.back[..bytes.len()].copy_from_slice(bytes);
        self.back_at = 0;
        self.back_len = bytes.len();
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
/// use taskq::input::{ReaderOptions, Record, TaskReader};
/// let data = br#"[{"image_key": "img/a.jpg", "size": "200x200"}]"#;
/// let mut reader = TaskReader::new(&data[..], "tasks.json", ReaderOptions::default());
/// match reader.next() {
///     Some(Ok(Record::Task { task, .. })) => assert_eq!(task.idempotency_key, "img/a.jpg:200x200"),
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

    #[cfg(all(test, not(feature = "loom")))]
    fn record_buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn error(&self, line: u64, column: u64, kind: InputErrorKind) -> InputError {
        InputError {
            source_name: self.source.clone(),
            at: Location {
                line: Some(line),
                column: Some(column),
            },
            kind,
        }
    }

    fn read_error(&self, e: io::Error) -> InputError {
        InputError {
            source_name: self.source.clone(),
            at: Location {
                line: Some(self.cur.line),
                column: None,
            },
            kind: InputErrorKind::Read(e),
        }
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

    /// Skips a UTF-8 byte-order mark at the start of the input.
    ///
    /// A first read may return fewer than three bytes, so the mark is matched a
    /// piece at a time; when the input turns out not to start with one (valid
    /// UTF-8 such as U+FF5B also starts with 0xEF), the bytes matched so far are
    /// put back, to be read as what they are.
    fn skip_bom(&mut self) -> Result<(), InputError> {
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        let mut matched = 0;
        while matched < BOM.len() {
            let chunk = match self.reader.fill() {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.read_error(e)),
            };
            let n = chunk.len().min(BOM.len() - matched);
            if n == 0 || chunk[..n] != BOM[matched..matched + n] {
                // Not a BOM (or the end of the input).
                self.reader.unread(&BOM[..matched]);
                return Ok(());
            }
            self.reader.consume(n);
            matched += n;
        }
        self.cur.offset = BOM.len() as u64;
        self.cur.line_start = BOM.len() as u64;
        Ok(())
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

    /// Reads one array element starting with `first` (not yet consumed).
    fn read_element(&mut self, first: u8) -> Result<Record, InputError> {
        let (line, column) = self.cur.here();
        self.buf.clear();
        if matches!(first, b'{' | b'[' | b'"') {
            if !self.copy_nested(line, column)? {
                return Err(self.truncated_record(line, column));
            }
        } else {
            self.copy_scalar(line, column)?;
            // Cut at a delimiter, a bad literal would read as "EOF while parsing";
            // name the token instead.
            if let Ok(text) = std::str::from_utf8(&self.buf) {
                if serde_json::from_str::<IgnoredAny>(text).is_err() {
                    let shown: String = text.chars().take(40).collect();
                    let shown = escape_invisible(&shown);
                    let message = format!("invalid JSON: `{shown}` is not a JSON value");
                    return Err(self.error(line, column, InputErrorKind::Syntax(message)));
                }
            }
        }
        self.parse_record(line, column)
    }

    /// Reads one NDJSON line starting at the next (non-blank) byte; the `\n` is
    /// left for the next whitespace skip.
    ///
    /// A line that is not a JSON record (not UTF-8, not JSON, too deep, too
    /// long) is one [`Record::Invalid`]: the reader resyncs at the next newline.
    /// Of a line longer than the limit only the first `max_record_bytes` are
    /// kept (to find nesting past the depth limit there first); the rest is
    /// consumed as it streams by. With [`ReaderOptions::strict`] such a line is
    /// the [`InputError`] it would be in an array, and the line is left unread.
    fn read_line(&mut self) -> Result<Record, InputError> {
        let (line, column) = self.cur.here();
        self.buf.clear();
        let limit = self.options.max_record_bytes;
        let mut too_large = false;
        loop {
            let chunk = match self.reader.fill() {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.read_error(e)),
            };
            if chunk.is_empty() {
                break;
            }
            let end = find_byte(b'\n', chunk);
            let used = end.unwrap_or(chunk.len());
            if !too_large && self.buf.len() + used > limit {
                // Nesting too deep within the first `limit` bytes comes first.
                let room = limit - self.buf.len();
                self.buf.extend_from_slice(&chunk[..room]);
                too_large = true;
                if self.options.strict {
                    let e = self.too_deep_in_line(line, column).unwrap_or_else(|| {
                        self.error(line, column, InputErrorKind::RecordTooLarge { limit })
                    });
                    return Err(e);
                }
            } else if !too_large {
                self.buf.extend_from_slice(&chunk[..used]);
            }
            self.advance(used);
            if end.is_some() {
                break;
            }
        }
        // The line holds no newline, so the cursor's column bookkeeping (only
        // needed for errors later on this line) is not kept up inside it.
        let refused = match self.too_deep_in_line(line, column) {
            Some(e) => Some(e),
            None if too_large => {
                Some(self.error(line, column, InputErrorKind::RecordTooLarge { limit }))
            }
            None => None,
        };
        if let Some(e) = refused {
            let index = self.index;
            self.index += 1;
            return self.invalid_line(line, index, e);
        }
        match self.parse_record(line, column) {
            Err(e) => self.invalid_line(line, self.index - 1, e),
            record => record,
        }
    }

    /// The verdict on the NDJSON line at `line` (record `index`) that failed to
    /// read as a record with `e`: one invalid record, or, when strict (or for a
    /// read error, which ends the input), the error itself.
    fn invalid_line(&self, line: u64, index: u64, e: InputError) -> Result<Record, InputError> {
        if self.options.strict {
            return Err(e);
        }
        match malformed(&e) {
            Some(error) => Ok(Record::Invalid { line, index, error }),
            None => Err(e),
        }
    }

    /// The error for nesting past the limit in the (part of the) line in `buf`,
    /// which starts at `line`, `column`.
    fn too_deep_in_line(&self, line: u64, column: u64) -> Option<InputError> {
        let offset = too_deep_at(&self.buf, self.options.max_depth)?;
        let (l, c) = self.buf_position(offset, line, column);
        let limit = self.options.max_depth;
        Some(self.error(l, c, InputErrorKind::TooDeep { limit }))
    }

    /// Copies an array element that starts with `{`, `[` or `"` into `buf` until
    /// it ends; `Ok(false)` at EOF first.
    fn copy_nested(&mut self, line: u64, column: u64) -> Result<bool, InputError> {
        self.scan = Scan::default();
        let limit = self.options.max_record_bytes;
        loop {
            let chunk = match self.reader.fill() {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.read_error(e)),
            };
            if chunk.is_empty() {
                return Ok(false);
            }
            let scanned = scan_chunk(&mut self.scan, &mut self.cur, chunk, self.options.max_depth);
            let (used, done) = match scanned {
                Ok(r) => r,
                // The limit crossed first in the record wins, however the input
                // is chunked: a bracket past the size limit is never reached.
                Err(ScanStop::TooDeep { at, .. }) if self.buf.len() + at >= limit => {
                    return Err(self.error(line, column, InputErrorKind::RecordTooLarge { limit }));
                }
                Err(ScanStop::TooDeep { line, column, .. }) => {
                    let limit = self.options.max_depth;
                    return Err(self.error(line, column, InputErrorKind::TooDeep { limit }));
                }
            };
            if self.buf.len() + used > limit {
                return Err(self.error(line, column, InputErrorKind::RecordTooLarge { limit }));
            }
            self.buf.extend_from_slice(&chunk[..used]);
            self.advance(used);
            if done {
                return Ok(true);
            }
        }
    }

    /// Copies a scalar element (number, literal, garbage) up to a delimiter.
    fn copy_scalar(&mut self, line: u64, column: u64) -> Result<(), InputError> {
        let limit = self.options.max_record_bytes;
        loop {
            let chunk = match self.reader.fill() {
                Ok(chunk) => chunk,
                Err(e) => return Err(self.read_error(e)),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            let end = chunk.iter().position(|&b| {
                matches!(
                    b,
                    b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':'
                )
            });
            let used = end.unwrap_or(chunk.len());
            if self.buf.len() + used > limit {
                return Err(self.error(line, column, InputErrorKind::RecordTooLarge { limit }));
            }
            for &b in &chunk[..used] {
                if b >= 0x80 {
                    self.cur.non_ascii(b);
                }
            }
            self.buf.extend_from_slice(&chunk[..used]);
            self.advance(used);
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// The error for an array element cut off by the end of the file. A syntax
    /// error already inside the partial record (a mismatched bracket, say) is
    /// reported in preference, since it is the real cause.
    fn truncated_record(&self, line: u64, column: u64) -> InputError {
        if let Ok(text) = std::str::from_utf8(&self.buf) {
            if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
                if !e.is_eof() {
                    return self.json_error(&e, line, column);
                }
            }
        }
        let (l, c) = self.cur.here();
        let message = format!("the task starting at line {line}, column {column} is cut off");
        self.error(l, c, InputErrorKind::Truncated(message))
    }

    /// The file line and column of byte `offset` of the record in `buf`, which
    /// starts at `line`, `column`.
    fn buf_position(&self, offset: usize, line: u64, column: u64) -> (u64, u64) {
        let before = &self.buf[..offset.min(self.buf.len())];
        let chars = |s: &[u8]| s.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64;
        match before.iter().rposition(|&b| b == b'\n') {
            None => (line, column + chars(before)),
            Some(nl) => {
                let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
                (line + newlines, 1 + chars(&before[nl + 1..]))
            }
        }
    }

    /// A serde_json syntax error, moved from record coordinates to file ones.
    fn json_error(&self, e: &serde_json::Error, line: u64, column: u64) -> InputError {
        // serde_json's (line, column) names the byte at index
        // `start_of_line(line) + column - 1` of the record.
        let mut start = 0;
        if e.line() > 1 {
            let mut seen = 0;
            for (i, &b) in self.buf.iter().enumerate() {
                if b == b'\n' {
                    seen += 1;
                    if seen == e.line() - 1 {
                        start = i + 1;
                        break;
                    }
                }
            }
        }
        let mut offset = (start + e.column()).saturating_sub(1);
        let text = e.to_string();
        // serde_json places this error on the control character or, when it was
        // skipping a value, on the byte before it; point at the character.
        let is_control = |i: usize| self.buf.get(i).is_some_and(|&b| b < 0x20);
        if text.starts_with("control character") && !is_control(offset) && is_control(offset + 1) {
            offset += 1;
        }
        let (l, c) = self.buf_position(offset, line, column);
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text);
        self.error(
            l,
            c,
            InputErrorKind::Syntax(format!("invalid JSON: {message}")),
        )
    }

    /// Parses the record in `buf` and validates it into a task.
    fn parse_record(&mut self, line: u64, column: u64) -> Result<Record, InputError> {
        let index = self.index;
        self.index += 1;
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => {
                let offset = e.valid_up_to();
                let (l, c) = self.buf_position(offset, line, column);
                return Err(self.error(l, c, InputErrorKind::NotUtf8(self.buf[offset])));
            }
        };
        let task = match serde_json::from_str::<RawRecord<'_>>(text) {
            Ok(raw) => raw.into_task(index),
            Err(e) => self.parse_with_big_numbers(text, e, index, line, column)?,
        };
        Ok(match task {
            Ok(task) => Record::Task { line, index, task },
            Err(error) => Record::Invalid { line, index, error },
        })
    }

    /// Parses and validates a record that serde_json refused with `error`, in
    /// case it refused only a number beyond the range of an `f64` (like `1e999`):
    /// valid JSON, which serde_json skips in unknown fields but will not parse
    /// as a value.
    ///
    /// Such numbers are replaced by small ones of the same length (`1e999`
    /// becomes `0    `), so that the record parses and any other error keeps its
    /// position. It is parsed twice, with `0` and with `1`: a known field whose
    /// value differs between the two held a big number ([`Val::OutOfRange`]).
    fn parse_with_big_numbers(
        &self,
        text: &str,
        error: serde_json::Error,
        index: u64,
        line: u64,
        column: u64,
    ) -> Result<Result<Task, TaskError>, InputError> {
        let spans = big_numbers(text);
        if spans.is_empty() {
            return Err(self.json_error(&error, line, column));
        }
        let zeros = replace_numbers(text, &spans, b'0');
        let ones = replace_numbers(text, &spans, b'1');
        match (
            serde_json::from_str::<RawRecord<'_>>(&zeros),
            serde_json::from_str::<RawRecord<'_>>(&ones),
        ) {
            (Ok(raw), Ok(other)) => Ok(raw.with_out_of_range(other).into_task(index)),
            (Err(e), _) | (_, Err(e)) => Err(self.json_error(&e, line, column)),
        }
    }
}

/// The length of the JSON number at the start of `b` (the longest prefix that
/// is one, as serde_json reads it); 0 when it does not start with one.
fn number_len(b: &[u8]) -> usize {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return 0,
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let exponent = i + 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if b.get(exponent).is_some_and(u8::is_ascii_digit) {
            i = digits(exponent);
        }
    }
    i
}

/// Where the record `text` holds numbers, outside strings, that serde_json
/// refuses as out of range.
fn big_numbers(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = number_len(&b[i..]);
                if len == 0 {
                    i += 1;
                    continue;
                }
                // The number is well-formed, so only its range can fail.
                if serde_json::from_str::<f64>(&text[i..i + len]).is_err() {
                    spans.push(i..i + len);
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    spans
}

/// `text` with each number in `spans` replaced by `digit` (after the number's
/// sign, if any) and spaces, to the same length.
fn replace_numbers(text: &str, spans: &[Range<usize>], digit: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for span in spans {
        let number = &mut bytes[span.clone()];
        let at = usize::from(number[0] == b'-');
        number[at] = digit;
        number[at + 1..].fill(b' ');
    }
    String::from_utf8(bytes).expect("ASCII replaced by ASCII")
}

/// Whether showing `c` as it is could hide or rewrite text on a terminal: a
/// control character (C0, DEL, C1: ESC, backspace, CSI, NEL...), a bidirectional
/// override or isolate, a line or paragraph separator, or an invisible format
/// character (zero-width ones, the soft hyphen, the BOM, tag characters).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{AD}'
                | '\u{34F}'
                | '\u{61C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// `text` from the input, made safe to show in a message: each character for
/// which [`is_invisible`] holds is written as a Rust escape (`\u{1b}`).
fn escape_invisible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_invisible(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// An error about one NDJSON line, as the [`TaskError::Malformed`] of an
/// invalid record: what was wrong and expected, and at which column of the
/// line (the line is the record's). `None` for an error that is not about the
/// line's bytes (a read error).
fn malformed(e: &InputError) -> Option<TaskError> {
    let at = match e.column() {
        Some(column) => format!(" at column {column}"),
        None => String::new(),
    };
    let message = match &e.kind {
        InputErrorKind::NotUtf8(byte) => {
            format!("not UTF-8: byte 0x{byte:02X}{at}; task files must be UTF-8 text")
        }
        InputErrorKind::Syntax(message) => {
            let message = message.strip_prefix("invalid JSON: ").unwrap_or(message);
            let message = match message.strip_prefix("EOF while parsing ") {
                Some("a list") => "the line ends inside an array (expected ']')",
                Some("an object") => "the line ends inside an object (expected '}')",
                Some("a string") => "the line ends inside a string (expected '\"')",
                Some(_) => "the line ends where a value is expected",
                None => message,
            };
            format!("not JSON: {message}{at}")
        }
        InputErrorKind::TooDeep { limit } => {
            format!("nests arrays/objects deeper than {limit} levels{at} (max_depth)")
        }
        InputErrorKind::RecordTooLarge { limit } => format!(
            "longer than {limit} bytes (max_record_bytes); each task must fit in \
             {limit} bytes, the rest of the line was skipped"
        ),
        _ => return None,
    };
    Some(TaskError::Malformed(message))
}

/// Re-labels a syntax error found during format detection as a format error.
fn as_format_error(mut e: InputError) -> InputError {
    if let InputErrorKind::Syntax(message) = e.kind {
        e.kind = InputErrorKind::Format(message);
    }
    e
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
    let name = source_name(path);
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
    let mut reader = open_path(path, options)?;
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

/// A JSON value as far as validation cares: strings (borrowed when unescaped)
/// and integers are kept, anything else is reduced to its type.
enum Val<'a> {
    Str(Cow<'a, str>),
    UInt(u64),
    Int(i64),
    Float(f64),
    /// A number beyond the range of an `f64` (see
    /// [`TaskReader::parse_with_big_numbers`]).
    OutOfRange,
    Bool,
    Null,
    Array,
    Object,
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::UInt(_) | Val::Int(_) | Val::Float(_) | Val::OutOfRange => "a number",
            Val::Bool => "a boolean",
            Val::Null => "null",
            Val::Array => "an array",
            Val::Object => "an object",
        }
    }
}

/// Accepts any JSON value, as a [`Val`].
struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Val::Int(v), Val::UInt))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Val::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Object)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// The fields a task object may hold; anything else is ignored.
enum Field {
    ImageKey,
    Size,
    Id,
    IdempotencyKey,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "image_key" => Field::ImageKey,
                    "size" => Field::Size,
                    "id" => Field::Id,
                    "idempotency_key" => Field::IdempotencyKey,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(FieldVisitor)
    }
}

/// A task object's known fields, each holding whatever JSON it had.
#[derive(Default)]
struct RawTask<'a> {
    image_key: Option<Val<'a>>,
    size: Option<Val<'a>>,
    id: Option<Val<'a>>,
    idempotency_key: Option<Val<'a>>,
    /// The first known field seen twice.
    duplicate: Option<&'static str>,
}

/// A parsed record: a task object, or the type of the non-object it was.
enum RawRecord<'a> {
    Object(RawTask<'a>),
    NotAnObject(&'static str),
}

impl<'de> Deserialize<'de> for RawRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = RawRecord<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawTask::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let (slot, name) = match field {
                        Field::ImageKey => (&mut raw.image_key, "image_key"),
                        Field::Size => (&mut raw.size, "size"),
                        Field::Id => (&mut raw.id, "id"),
                        Field::IdempotencyKey => (&mut raw.idempotency_key, "idempotency_key"),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Val<'de>>()?;
                    if slot.replace(value).is_some() && raw.duplicate.is_none() {
                        raw.duplicate = Some(name);
                    }
                }
                Ok(RawRecord::Object(raw))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                ValVisitor.visit_seq(seq)?;
                Ok(RawRecord::NotAnObject("an array"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a number"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("a string"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawRecord::NotAnObject("null"))
            }
        }
        d.deserialize_any(RecordVisitor)
    }
}

/// `expected {what}, got {the type of v}`.
fn wrong_type(field: &'static str, what: &str, v: &Val<'_>) -> TaskError {
    TaskError::field(field, format!("expected {what}, got {}", v.type_name()))
}

/// Whether `a` and `b` are the same number, or not both numbers.
fn same_number(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::UInt(x), Val::UInt(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x.to_bits() == y.to_bits(),
        (Val::UInt(_) | Val::Int(_) | Val::Float(_), _)
        | (_, Val::UInt(_) | Val::Int(_) | Val::Float(_)) => false,
        _ => true,
    }
}

impl RawRecord<'_> {
    /// This record, parsed with its big numbers replaced by zeros, with each
    /// known field that has another number in `other` (the same record parsed
    /// with ones instead) marked [`Val::OutOfRange`].
    fn with_out_of_range(self, other: RawRecord<'_>) -> Self {
        let (mut raw, other) = match (self, other) {
            (RawRecord::Object(raw), RawRecord::Object(other)) => (raw, other),
            // Not an object: its type is all that matters.
            (record, _) => return record,
        };
        for (slot, other) in [
            (&mut raw.image_key, other.image_key),
            (&mut raw.size, other.size),
            (&mut raw.id, other.id),
            (&mut raw.idempotency_key, other.idempotency_key),
        ] {
            if let (Some(a), Some(b)) = (slot.as_ref(), other.as_ref()) {
                if !same_number(a, b) {
                    *slot = Some(Val::OutOfRange);
                }
            }
        }
        RawRecord::Object(raw)
    }

    /// Validates the record at 0-based position `index` into a task.
    fn into_task(self, index: u64) -> Result<Task, TaskError> {
        let raw = match self {
            RawRecord::Object(raw) => raw,
            RawRecord::NotAnObject(kind) => return Err(TaskError::NotAnObject(kind)),
        };
        if let Some(field) = raw.duplicate {
            return Err(TaskError::field(
                field,
                "appears more than once in the task",
            ));
        }
        let image_key = match raw.image_key {
            None => return Err(TaskError::Missing("image_key")),
            Some(Val::Str(s)) => s,
            Some(v) => return Err(wrong_type("image_key", "a string", &v)),
        };
        validate_key("image_key", &image_key)?;
        let size: Size = match raw.size {
            None => return Err(TaskError::Missing("size")),
            Some(Val::Str(s)) => s.parse()?,
            Some(v) => return Err(wrong_type("size", "a string", &v)),
        };
        let id = match raw.id {
            None | Some(Val::Null) => (index + 1).to_compact_string(),
            Some(Val::Str(s)) => CompactString::from(s),
            Some(Val::UInt(n)) => n.to_compact_string(),
            Some(Val::Int(n)) => {
                let message = format!("expected a string or a non-negative integer, got {n}");
                return Err(TaskError::field("id", message));
            }
            Some(Val::Float(x)) => {
                let message = format!("expected a string or a non-negative integer, got {x}");
                return Err(TaskError::field("id", message));
            }
            Some(v) => return Err(wrong_type("id", "a string or a non-negative integer", &v)),
        };
        let idempotency_key = match raw.idempotency_key {
            None | Some(Val::Null) => default_idempotency_key(&image_key, size),
            Some(Val::Str(s)) => {
                validate_key("idempotency_key", &s)?;
                CompactString::from(s)
            }
            Some(v) => return Err(wrong_type("idempotency_key", "a string", &v)),
        };
        Ok(Task {
            id,
            image_key: CompactString::from(image_key),
            size,
            idempotency_key,
            created_at: unix_millis(),
            attempts: 0,
        })
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::io::{BufReader, Read, Write};

    const A: &str = r#"{"image_key": "img/a.jpg", "size": "200x200"}"#;
    const B: &str = r#"{"image_key": "img/b.jpg", "size": "400x400"}"#;

    /// One line per item: `{line} #{index} ok ...`, `{line} #{index} invalid: ...`
    /// or `error: ...`.
    fn describe(item: Result<Record, InputError>) -> String {
        match item {
            Ok(Record::Task { line, index, task }) => format!(
                "{line} #{index} ok id={} {} {} key={}",
                task.id, task.image_key, task.size, task.idempotency_key
            ),
            Ok(Record::Invalid { line, index, error }) => {
                format!("{line} #{index} invalid: {error}")
            }
            Err(e) => format!("error: {e}"),
        }
    }

    /// Reads all of `input` twice, from one big chunk and a byte at a time, and
    /// checks both agree and that nothing follows an error.
    fn read_with(input: &[u8], options: ReaderOptions) -> Vec<String> {
        let whole: Vec<String> = TaskReader::new(input, "tasks.json", options)
            .map(describe)
            .collect();
        let tiny = BufReader::with_capacity(1, input);
        let bytewise: Vec<String> = TaskReader::new(tiny, "tasks.json", options)
            .map(describe)
            .collect();
        assert_eq!(whole, bytewise, "chunking changed the result");
        if let Some(i) = whole.iter().position(|s| s.starts_with("error:")) {
            assert_eq!(i, whole.len() - 1, "items after an error: {whole:?}");
        }
        whole
    }

    fn read(input: &str) -> Vec<String> {
        read_with(input.as_bytes(), ReaderOptions::default())
    }

    /// The error `input` must end in.
    fn error_of(input: &[u8]) -> String {
        ending_error(read_with(input, ReaderOptions::default()))
    }

    /// The error `input` must end in, read strictly: an NDJSON line that is not
    /// a JSON record is then the error it would be in an array, with its line
    /// and column (read leniently, it is one invalid record naming the column:
    /// see `broken_ndjson_lines_are_invalid_records_and_the_reader_resyncs`).
    fn strict_error_of(input: &[u8]) -> String {
        let strict = ReaderOptions {
            strict: true,
            ..ReaderOptions::default()
        };
        ending_error(read_with(input, strict))
    }

    /// The error that ends `items`, without its `error: `.
    fn ending_error(items: Vec<String>) -> String {
        let last = items.last().cloned().unwrap_or_default();
        assert!(
            last.starts_with("error: "),
            "expected an error, got {items:?}"
        );
        last["error: ".len()..].to_owned()
    }

    fn first_error(input: &[u8], options: ReaderOptions) -> InputError {
        TaskReader::new(input, "tasks.json", options)
            .find_map(Result::err)
            .expect("an error")
    }

    const FILE_ERROR: &str =
        "expected a JSON array of task objects or NDJSON (one object per line)";

    #[test]
    fn json_array_with_defaults() {
        let input = format!(
            r#"[{A}, {{"image_key": "img/b.jpg", "size": "400x400", "id": "x7", "idempotency_key": "k"}}]"#
        );
        assert_eq!(
            read(&input),
            [
                "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "1 #1 ok id=x7 img/b.jpg 400x400 key=k",
            ]
        );
        let mut reader = TaskReader::new(input.as_bytes(), "t", ReaderOptions::default());
        assert_eq!(reader.format(), None);
        let Some(Ok(Record::Task { task, .. })) = reader.next() else {
            panic!("a task")
        };
        assert_eq!(reader.format(), Some(InputFormat::Json));
        assert_eq!((task.attempts, task.created_at > 0), (0, true));
        assert_eq!(read("[]"), Vec::<String>::new());
        assert_eq!(read(" \n [ \n ] \n\n"), Vec::<String>::new());
    }

    #[test]
    fn ndjson_with_blank_lines() {
        let input = format!("\n{A}\n\n   \n{B}\n\t\n{A}");
        assert_eq!(
            read(&input),
            [
                "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "5 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
                "7 #2 ok id=3 img/a.jpg 200x200 key=img/a.jpg:200x200",
            ]
        );
        let mut reader = TaskReader::new(input.as_bytes(), "t", ReaderOptions::default());
        reader.next();
        assert_eq!(reader.format(), Some(InputFormat::Ndjson));
    }

    #[test]
    fn pretty_printed_array_keeps_line_numbers() {
        let input =
            "[\n  {\n    \"image_key\": \"img/a.jpg\",\n    \"size\": \"200x200\"\n  },\n  \
                     {\"image_key\": \"img/b.jpg\", \"size\": \"800x800\"}\n]\n";
        assert_eq!(
            read(input),
            [
                "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "6 #1 ok id=2 img/b.jpg 800x800 key=img/b.jpg:800x800",
            ]
        );
        let broken = format!("[\n  {A},\n  {{\n    \"image_key\" \"img/b.jpg\",\n  }}\n]");
        assert_eq!(
            read(&broken)[1],
            "error: tasks.json:4:17: invalid JSON: expected `:`"
        );
    }

    #[test]
    fn crlf_line_endings() {
        let array = format!("[\r\n{A},\r\n\r\n{B}\r\n]\r\n");
        assert_eq!(
            read(&array),
            [
                "2 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "4 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
            ]
        );
        let lines = format!("{A}\r\n\r\n{B}\r\n");
        assert_eq!(
            read(&lines),
            [
                "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "3 #1 ok id=2 img/b.jpg 400x400 key=img/b.jpg:400x400",
            ]
        );
        assert_eq!(
            error_of(format!("[\r\n{A}\r\n  x]").as_bytes()),
            "tasks.json:3:3: expected ',' or ']' after a task, found 'x'"
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let bom = "\u{FEFF}";
        assert_eq!(read(&format!("{bom}[{A}]")).len(), 1);
        assert_eq!(read(&format!("{bom}{A}\n{B}\n")).len(), 2);
        assert_eq!(
            error_of(format!("{bom}x").as_bytes()),
            format!("tasks.json:1:1: {FILE_ERROR}, found 'x'")
        );
        assert_eq!(
            error_of(b"\xEF\xBB[]"),
            "tasks.json:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"
        );
    }

    #[test]
    fn empty_or_unrecognised_files_are_refused() {
        assert_eq!(
            error_of(b""),
            format!("tasks.json:1:1: {FILE_ERROR}, found end of file")
        );
        assert_eq!(
            error_of(b" \n\n\t"),
            format!("tasks.json:3:2: {FILE_ERROR}, found end of file")
        );
        assert_eq!(
            error_of(b"\xEF\xBB\xBF"),
            format!("tasks.json:1:1: {FILE_ERROR}, found end of file")
        );
        assert_eq!(
            error_of(b"hello"),
            format!("tasks.json:1:1: {FILE_ERROR}, found 'h'")
        );
        assert_eq!(
            error_of("  é".as_bytes()),
            format!("tasks.json:1:3: {FILE_ERROR}, found 'é'")
        );
        let e = first_error(b"", ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::Format(_)));
        assert_eq!(
            (e.source_name(), e.line(), e.column()),
            ("tasks.json", Some(1), Some(1))
        );
    }

    #[test]
    fn forced_formats() {
        let json = ReaderOptions {
            format: InputFormat::Json,
            ..Default::default()
        };
        let ndjson = ReaderOptions {
            format: InputFormat::Ndjson,
            ..Default::default()
        };
        let e = first_error(A.as_bytes(), json);
        assert!(matches!(e.kind(), InputErrorKind::Format(_)));
        assert_eq!(
            e.to_string(),
            "tasks.json:1:1: expected '[' to start a JSON array of task objects, found '{'"
        );
        assert_eq!(
            read_with(format!("\u{FEFF} [{A}]").as_bytes(), json).len(),
            1
        );
        // An empty NDJSON file is simply empty.
        assert_eq!(read_with(b"", ndjson), Vec::<String>::new());
        assert_eq!(read_with(b"\n \n", ndjson), Vec::<String>::new());
        let reader = TaskReader::new(&b""[..], "t", ndjson);
        assert_eq!(reader.format(), Some(InputFormat::Ndjson));
        // A pretty-printed array is not NDJSON: its lines are read one by one,
        // and only the task on a line of its own is one.
        let items = read_with(format!("[\n{A}\n]").as_bytes(), ndjson);
        assert_eq!(
            items,
            [
                "1 #0 invalid: not JSON: the line ends inside an array (expected ']') \
                 at column 1",
                "2 #1 ok id=2 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "3 #2 invalid: not JSON: expected value at column 1",
            ]
        );
        let strict = ReaderOptions {
            strict: true,
            ..ndjson
        };
        assert_eq!(
            read_with(format!("[\n{A}\n]").as_bytes(), strict),
            ["error: tasks.json:1:1: invalid JSON: EOF while parsing a list"]
        );
    }

    #[test]
    fn invalid_utf8_is_a_file_error() {
        let in_string = b"{\"image_key\": \"img/\xFF.jpg\", \"size\": \"200x200\"}\n";
        assert_eq!(
            strict_error_of(in_string),
            "tasks.json:1:20: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
        );
        let after_wide = "[{\"image_key\": \"ü"
            .as_bytes()
            .iter()
            .chain(b"\xC3(\"}]")
            .copied();
        assert_eq!(
            error_of(&after_wide.collect::<Vec<u8>>()),
            "tasks.json:1:18: invalid UTF-8 (byte 0xC3); task files must be UTF-8 text"
        );
        let unknown_field = format!("{A}\n{{\"x\": \"\x00\"}}\n").replace('\0', "");
        let mut bytes = unknown_field.into_bytes();
        bytes.splice(bytes.len() - 3..bytes.len() - 3, *b"\xED\xA0\x80");
        assert_eq!(
            strict_error_of(&bytes),
            "tasks.json:2:8: invalid UTF-8 (byte 0xED); task files must be UTF-8 text"
        );
        let mut between = format!("[{A},\n ").into_bytes();
        between.extend_from_slice(b"\xFF]");
        assert_eq!(
            error_of(&between),
            "tasks.json:2:2: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
        );
        assert_eq!(
            error_of(b"\xFF\xFE[]"),
            "tasks.json:1:1: invalid UTF-8 (byte 0xFF); task files must be UTF-8 text"
        );
        let e = first_error(b"[\"\xC0\xAF\"]", ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::NotUtf8(0xC0)));
    }

    #[test]
    fn truncated_arrays() {
        assert_eq!(
            error_of(b"["),
            "tasks.json:1:2: unexpected end of file: the task array opened on line 1 \
             is not closed (expected a task or ']')"
        );
        assert_eq!(
            error_of(format!("\n[{A}").as_bytes()),
            "tasks.json:2:47: unexpected end of file: the task array opened on line 2 \
             is not closed (expected ',' or ']')"
        );
        assert_eq!(
            error_of(format!("[{A},\n").as_bytes()),
            "tasks.json:2:1: unexpected end of file: the task array opened on line 1 \
             is not closed (expected a task after ',')"
        );
        assert_eq!(
            error_of(b"[{\"image_key\": \"img/a"),
            "tasks.json:1:22: unexpected end of file: the task starting at line 1, \
             column 2 is cut off"
        );
        assert_eq!(
            error_of(b"[{\"x\": [1}\n"),
            "tasks.json:1:10: invalid JSON: expected `,` or `]`"
        );
        assert_eq!(
            error_of(b"[1"),
            "tasks.json:1:3: unexpected end of file: the task array opened on line 1 \
             is not closed (expected ',' or ']')"
        );
        let e = first_error(b"[", ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::Truncated(_)));
    }

    #[test]
    fn trailing_data_after_the_array() {
        assert_eq!(
            error_of(b"[]x"),
            "tasks.json:1:3: unexpected 'x' after the closing ']' of the task array \
             (only whitespace may follow it)"
        );
        let two = format!("[{A}]\n[{B}]");
        let items = read(&two);
        assert_eq!(items.len(), 2);
        assert!(
            items[1].starts_with("error: tasks.json:2:1: unexpected '['"),
            "{items:?}"
        );
        assert_eq!(read("[] \n \r\n"), Vec::<String>::new());
        let e = first_error(b"[] {}", ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::TrailingData(_)));
    }

    #[test]
    fn array_punctuation_errors() {
        assert_eq!(
            error_of(format!("[{A} {B}]").as_bytes()),
            "tasks.json:1:48: expected ',' or ']' after a task, found '{'"
        );
        assert_eq!(
            error_of(format!("[\n{A}}}]").as_bytes()),
            "tasks.json:2:46: expected ',' or ']' after a task, found '}'"
        );
        assert_eq!(
            error_of(format!("[{A},]").as_bytes()),
            "tasks.json:1:48: expected a task object after ',' (no trailing comma allowed), \
             found ']'"
        );
        assert_eq!(
            error_of(format!("[,{A}]").as_bytes()),
            "tasks.json:1:2: expected a task object or ']' after '[', found ','"
        );
        assert_eq!(
            error_of(format!("[{A},,{B}]").as_bytes()),
            "tasks.json:1:48: expected a task object after ',', found ','"
        );
        assert_eq!(
            error_of(b"[{\"image_key\": \"img/a.jpg\" \"size\": 1}]"),
            "tasks.json:1:28: invalid JSON: expected `,` or `}`"
        );
        assert_eq!(
            error_of(b"[1, tru]"),
            "tasks.json:1:5: invalid JSON: `tru` is not a JSON value"
        );
        assert_eq!(
            strict_error_of(format!("{A}\n{A}\n{{\"image_key\": }}\n").as_bytes()),
            "tasks.json:3:15: invalid JSON: expected value"
        );
        assert_eq!(
            strict_error_of(format!("{A} {B}\n").as_bytes()),
            "tasks.json:1:47: invalid JSON: trailing characters"
        );
        // Columns count characters, not bytes.
        assert_eq!(
            strict_error_of("{\"image_key\": \"ü\", \"size\": 5 x}".as_bytes()),
            "tasks.json:1:30: invalid JSON: expected `,` or `}`"
        );
        assert_eq!(
            error_of("[\"ü\", é]".as_bytes()),
            "tasks.json:1:7: expected a task object after ',', found 'é'"
        );
        let e = first_error(b"[tru]", ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::Syntax(_)));
    }

    #[test]
    fn non_objects_are_invalid_tasks() {
        let input = format!("[[1, [2]], 3, -4.5e1, \"s\", null, true, {{}}, {A}, [[{{}}]]]");
        assert_eq!(
            read(&input),
            [
                "1 #0 invalid: expected a JSON object for a task, got an array",
                "1 #1 invalid: expected a JSON object for a task, got a number",
                "1 #2 invalid: expected a JSON object for a task, got a number",
                "1 #3 invalid: expected a JSON object for a task, got a string",
                "1 #4 invalid: expected a JSON object for a task, got null",
                "1 #5 invalid: expected a JSON object for a task, got a boolean",
                "1 #6 invalid: missing field `image_key`",
                "1 #7 ok id=8 img/a.jpg 200x200 key=img/a.jpg:200x200",
                "1 #8 invalid: expected a JSON object for a task, got an array",
            ]
        );
        let ndjson = ReaderOptions {
            format: InputFormat::Ndjson,
            ..Default::default()
        };
        assert_eq!(
            read_with(b"[1]\n\"s\"\n42\n", ndjson),
            [
                "1 #0 invalid: expected a JSON object for a task, got an array",
                "2 #1 invalid: expected a JSON object for a task, got a string",
                "3 #2 invalid: expected a JSON object for a task, got a number",
            ]
        );
    }

    #[test]
    fn nesting_bomb_is_refused_without_recursion() {
        let bomb = format!("[{}", "[".repeat(100_000));
        let e = first_error(bomb.as_bytes(), ReaderOptions::default());
        assert!(matches!(e.kind(), InputErrorKind::TooDeep { limit: 64 }));
        assert_eq!(
            e.to_string(),
            "tasks.json:1:66: task nests arrays/objects deeper than 64 levels (max_depth)"
        );
        let line_bomb = format!("{A}\n{{\"x\": {}", "[".repeat(100_000));
        assert_eq!(
            strict_error_of(line_bomb.as_bytes()),
            "tasks.json:2:70: task nests arrays/objects deeper than 64 levels (max_depth)"
        );
        let object_bomb = format!("[{}", "{\"a\":".repeat(100_000));
        assert!(error_of(object_bomb.as_bytes()).contains("deeper than 64"));
        // Brackets inside strings do not count.
        let quoted = format!(
            "{{\"x\": \"{}\", \"image_key\": \"img/a.jpg\", \"size\": \"1x1\"}}",
            "[".repeat(500)
        );
        assert!(read(&quoted)[0].contains(" ok "));
        // The object is level 1: 63 arrays inside it are fine, 64 are not.
        let nested = |n: usize| {
            format!(
                "{{\"x\": {}{}, \"image_key\": \"img/a.jpg\", \"size\": \"1x1\"}}",
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(read(&nested(63))[0].contains(" ok "));
        assert!(read(&nested(64))[0].contains("deeper than 64"));
    }

    /// `prefix`, then `fill` bytes up to `len` bytes in all, generated on demand.
    struct Endless {
        prefix: Vec<u8>,
        fill: u8,
        len: u64,
        produced: u64,
    }

    impl Read for Endless {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let left = (self.len - self.produced).min(out.len() as u64) as usize;
            for (i, b) in out[..left].iter_mut().enumerate() {
                let at = self.produced as usize + i;
                *b = self.prefix.get(at).copied().unwrap_or(self.fill);
            }
            self.produced += left as u64;
            Ok(left)
        }
    }

    fn endless(prefix: &str, fill: u8, len: u64) -> BufReader<Endless> {
        let prefix = prefix.as_bytes().to_vec();
        BufReader::with_capacity(
            64 * 1024,
            Endless {
                prefix,
                fill,
                len,
                produced: 0,
            },
        )
    }

    #[test]
    fn huge_records_are_refused_at_the_limit() {
        const HUNDRED_MB: u64 = 100 << 20;
        let strict = ReaderOptions {
            strict: true,
            ..ReaderOptions::default()
        };
        // In an array, or in NDJSON read strictly, the record is refused at the
        // limit, after reading little more than it.
        for (prefix, fill, line, column) in [
            ("{\"image_key\": \"", b'a', 1, 1),
            ("\n[{\"image_key\": \"", b'a', 2, 2),
            ("[1", b'1', 1, 2),
            ("{\"x\": [", b' ', 1, 1),
        ] {
            let mut reader = TaskReader::new(endless(prefix, fill, HUNDRED_MB), "big.json", strict);
            let e = reader.next().expect("an item").expect_err("too large");
            assert!(matches!(
                e.kind(),
                InputErrorKind::RecordTooLarge { limit: 1_048_576 }
            ));
            assert_eq!(
                (e.line(), e.column()),
                (Some(line), Some(column)),
                "{prefix}"
            );
            assert!(
                reader.bytes_read() < 2 << 20,
                "read {} bytes",
                reader.bytes_read()
            );
            assert!(reader.record_buffer_capacity() <= 2 << 20);
            assert!(reader.next().is_none());
        }
        let e = TaskReader::new(
            endless("{\"image_key\": \"", b'a', HUNDRED_MB),
            "big.json",
            strict,
        )
        .find_map(Result::err)
        .unwrap();
        assert_eq!(
            e.to_string(),
            "big.json:1:1: a task record longer than 1048576 bytes starts here; \
             each task must fit in 1048576 bytes (max_record_bytes)"
        );
        // Whitespace between records is not a record: 8 MB of it streams through.
        let mut reader =
            TaskReader::new(endless("[", b' ', 8 << 20), "t", ReaderOptions::default());
        assert!(
            matches!(reader.next(), Some(Err(ref e)) if matches!(e.kind(), InputErrorKind::Truncated(_)))
        );
        // A smaller limit applies exactly.
        let small = ReaderOptions {
            max_record_bytes: A.len(),
            ..Default::default()
        };
        assert_eq!(read_with(A.as_bytes(), small).len(), 1);
        let tight = ReaderOptions {
            max_record_bytes: A.len() - 1,
            ..Default::default()
        };
        let message = format!("longer than {} bytes", A.len() - 1);
        assert!(read_with(A.as_bytes(), tight)[0].contains(&message));
        let in_array = format!("[{A}]");
        assert!(read_with(in_array.as_bytes(), tight)[0].starts_with("error: "));
    }

    #[test]
    fn broken_ndjson_lines_are_invalid_records_and_the_reader_resyncs() {
        let options = ReaderOptions {
            max_record_bytes: 64,
            max_depth: 3,
            ..ReaderOptions::default()
        };
        let lines: [&[u8]; 11] = [
            A.as_bytes(),
            br#"{"image_key": "img/c.jpg", "size":"#,
            b"{\"image_key\": \"img/\xFF.jpg\", \"size\": \"1x1\"}",
            b"  hello",
            br#"{"x": [[[1]]]}"#,
            br#"{"pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            b"42",
            "{\"a\": \"\u{fc}\", x}\r".as_bytes(),
            br#"{"a": "b"#,
            b"",
            B.as_bytes(),
        ];
        let input = lines.join(&b'\n');
        let expected = [
            "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200",
            "2 #1 invalid: not JSON: the line ends where a value is expected at column 34",
            "3 #2 invalid: not UTF-8: byte 0xFF at column 20; task files must be UTF-8 text",
            "4 #3 invalid: not JSON: expected value at column 3",
            "5 #4 invalid: nests arrays/objects deeper than 3 levels at column 9 (max_depth)",
            "6 #5 invalid: longer than 64 bytes (max_record_bytes); each task must fit in 64 \
             bytes, the rest of the line was skipped",
            "7 #6 invalid: expected a JSON object for a task, got a number",
            "8 #7 invalid: not JSON: key must be a string at column 12",
            "9 #8 invalid: not JSON: the line ends inside a string (expected '\"') at column 8",
            "11 #9 ok id=10 img/b.jpg 400x400 key=img/b.jpg:400x400",
        ];
        assert_eq!(read_with(&input, options), expected);
        // Every kind of broken line is a TaskError::Malformed, not a file error.
        let malformed = TaskReader::new(&input[..], "t", options)
            .filter(|r| {
                matches!(
                    r,
                    Ok(Record::Invalid {
                        error: TaskError::Malformed(_),
                        ..
                    })
                )
            })
            .count();
        assert_eq!(malformed, 7);
        // Forced NDJSON reads a first line that auto-detection refuses.
        let forced = ReaderOptions {
            format: InputFormat::Ndjson,
            ..options
        };
        let text = format!("hello\n{A}\n");
        assert_eq!(
            read_with(text.as_bytes(), forced),
            [
                "1 #0 invalid: not JSON: expected value at column 1",
                "2 #1 ok id=2 img/a.jpg 200x200 key=img/a.jpg:200x200",
            ]
        );
        assert!(error_of(text.as_bytes()).contains(FILE_ERROR));
    }

    #[test]
    fn an_over_long_ndjson_line_is_skipped_as_it_streams() {
        const LONG: u64 = 32 << 20;
        let head = format!("{A}\n{{\"image_key\": \"");
        let tail = format!("\n{B}\n");
        let input = endless(&head, b'a', head.len() as u64 + LONG).chain(tail.as_bytes());
        let mut reader = TaskReader::new(input, "big.ndjson", ReaderOptions::default());
        assert!(matches!(
            reader.next(),
            Some(Ok(Record::Task { line: 1, .. }))
        ));
        match reader.next() {
            Some(Ok(Record::Invalid {
                line: 2,
                index: 1,
                error: TaskError::Malformed(message),
            })) => assert!(
                message.starts_with("longer than 1048576 bytes"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        // The whole line went by, but only the first 1 MiB of it was kept.
        assert!(reader.bytes_read() > LONG);
        assert!(reader.record_buffer_capacity() <= 2 << 20);
        assert!(matches!(
            reader.next(),
            Some(Ok(Record::Task {
                line: 3,
                index: 2,
                ..
            }))
        ));
        assert!(reader.next().is_none());
    }

    #[test]
    fn strict_stops_at_the_first_invalid_record() {
        let strict = ReaderOptions {
            strict: true,
            ..ReaderOptions::default()
        };
        let ok_a = "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200";
        let after = "(strict: the first invalid record fails the run)";
        for (input, lenient, error) in [
            (
                format!("{A}\n{{\"size\": \"1x1\"}}\n{B}\n"),
                "2 #1 invalid: missing field `image_key`",
                format!("tasks.json:2: invalid task: missing field `image_key` {after}"),
            ),
            (
                format!("[{A},\n 5, {B}]"),
                "2 #1 invalid: expected a JSON object for a task, got a number",
                format!(
                    "tasks.json:2: invalid task: expected a JSON object for a task, \
                     got a number {after}"
                ),
            ),
            // A broken line is the error it would be in an array.
            (
                format!("{A}\n {{\"x\" 1}}\n{B}\n"),
                "2 #1 invalid: not JSON: expected `:` at column 7",
                "tasks.json:2:7: invalid JSON: expected `:`".to_owned(),
            ),
        ] {
            let items = read_with(input.as_bytes(), ReaderOptions::default());
            assert_eq!(items.len(), 3, "{items:?}");
            assert_eq!((items[0].as_str(), items[1].as_str()), (ok_a, lenient));
            assert_eq!(
                read_with(input.as_bytes(), strict),
                [ok_a.to_owned(), format!("error: {error}")]
            );
        }
        let e = first_error(b"{}\n", strict);
        assert!(matches!(
            e.kind(),
            InputErrorKind::InvalidTask(TaskError::Missing("image_key"))
        ));
        assert_eq!((e.line(), e.column()), (Some(1), None));
        // A file without an invalid record reads the same either way.
        let good = format!("{A}\n{B}\n");
        assert_eq!(
            read_with(good.as_bytes(), strict),
            read_with(good.as_bytes(), ReaderOptions::default())
        );
    }

    #[test]
    fn key_rules() {
        let task = |key: &str| format!(r#"{{"image_key": "{key}", "size": "200x200"}}"#);
        let big = "k".repeat(10 * 1024);
        assert_eq!(
            read(&task(&big)),
            ["1 #0 invalid: field `image_key`: must be at most 1024 bytes, got 10240"]
        );
        assert_eq!(
            read(&task("img/ünïcode/日本.jpg")),
            ["1 #0 ok id=1 img/ünïcode/日本.jpg 200x200 key=img/ünïcode/日本.jpg:200x200"]
        );
        assert_eq!(
            read(&task("img/../etc/passwd")),
            ["1 #0 invalid: field `image_key`: must not contain a '..' segment, got \"img/../etc/passwd\""]
        );
        assert_eq!(
            read(&task(r"img/a\u0000.jpg")),
            ["1 #0 invalid: field `image_key`: must not contain NUL"]
        );
        assert_eq!(
            read(&task(r"img\/\u00fc.jpg")),
            ["1 #0 ok id=1 img/ü.jpg 200x200 key=img/ü.jpg:200x200"]
        );
        assert_eq!(
            read(&task("/etc/passwd")),
            ["1 #0 invalid: field `image_key`: must be a relative path with '/' separators, got \"/etc/passwd\""]
        );
        assert_eq!(
            read(&task("")),
            ["1 #0 invalid: field `image_key`: must not be empty"]
        );
    }

    #[test]
    fn size_rules() {
        let task = |size: &str| format!(r#"{{"image_key": "img/a.jpg", "size": {size}}}"#);
        assert!(read(&task("\"10000x1\""))[0].contains(" ok "));
        for bad in ["0x0", "-1x5", "99999x1", "200X200", "", " 200x200"] {
            assert_eq!(
                read(&task(&format!("{bad:?}"))),
                [format!(
                    "1 #0 invalid: field `size`: expected WxH with 1 <= W,H <= 10000 \
                     (like \"200x200\"), got {bad:?}"
                )]
            );
        }
        assert_eq!(
            read(&task("200")),
            ["1 #0 invalid: field `size`: expected a string, got a number"]
        );
        assert_eq!(
            read(&task("null")),
            ["1 #0 invalid: field `size`: expected a string, got null"]
        );
        assert_eq!(
            read(&task("{\"w\": 1}")),
            ["1 #0 invalid: field `size`: expected a string, got an object"]
        );
        assert_eq!(
            read(r#"{"image_key": "img/a.jpg"}"#),
            ["1 #0 invalid: missing field `size`"]
        );
    }

    #[test]
    fn id_rules() {
        let with_id =
            |id: &str| format!(r#"{{"image_key": "img/a.jpg", "size": "1x1", "id": {id}}}"#);
        let input = [
            with_id("\"abc\""),
            with_id("42"),
            with_id("0"),
            with_id("null"),
            with_id("-1"),
            with_id("1.5"),
            with_id("true"),
            "[1]".to_owned(),
            r#"{"image_key": "img/a.jpg", "size": "1x1"}"#.to_owned(),
            with_id("18446744073709551615"),
            with_id("\"\""),
        ]
        .join("\n");
        let ok = |line: u64, id: &str| {
            format!(
                "{line} #{} ok id={id} img/a.jpg 1x1 key=img/a.jpg:1x1",
                line - 1
            )
        };
        assert_eq!(
            read(&input),
            [
                ok(1, "abc"),
                ok(2, "42"),
                ok(3, "0"),
                ok(4, "4"),
                "5 #4 invalid: field `id`: expected a string or a non-negative integer, got -1".to_owned(),
                "6 #5 invalid: field `id`: expected a string or a non-negative integer, got 1.5".to_owned(),
                "7 #6 invalid: field `id`: expected a string or a non-negative integer, got a boolean"
                    .to_owned(),
                "8 #7 invalid: expected a JSON object for a task, got an array".to_owned(),
                ok(9, "9"),
                ok(10, "18446744073709551615"),
                ok(11, ""),
            ]
        );
    }

    #[test]
    fn idempotency_key_rules() {
        let with_key = |k: &str| {
            format!(r#"{{"image_key": "img/a.jpg", "size": "1x1", "idempotency_key": {k}}}"#)
        };
        let input = [
            with_key("\"run-1\""),
            with_key("null"),
            with_key("5"),
            with_key("\"\""),
            with_key("\"../x\""),
        ]
        .join("\n");
        assert_eq!(
            read(&input),
            [
                "1 #0 ok id=1 img/a.jpg 1x1 key=run-1",
                "2 #1 ok id=2 img/a.jpg 1x1 key=img/a.jpg:1x1",
                "3 #2 invalid: field `idempotency_key`: expected a string, got a number",
                "4 #3 invalid: field `idempotency_key`: must not be empty",
                "5 #4 ok id=5 img/a.jpg 1x1 key=../x",
            ]
        );
    }

    #[test]
    fn field_types_and_unknown_fields() {
        let input = [
            r#"{"image_key": 5, "size": "1x1"}"#,
            r#"{"image_key": ["img/a.jpg"], "size": "1x1"}"#,
            r#"{"image_key": null, "size": "1x1"}"#,
            r#"{"size": "1x1"}"#,
            r#"{"image_key": "img/a.jpg", "size": "1x1", "size": "2x2"}"#,
            r#"{"extra": {"deep": [1, {"x": null}]}, "image_key": "img/a.jpg", "size": "1x1", "\u0069d": "esc", "other": 1e999}"#,
        ]
        .join("\n");
        let items = read(&input);
        assert_eq!(
            items[..5],
            [
                "1 #0 invalid: field `image_key`: expected a string, got a number",
                "2 #1 invalid: field `image_key`: expected a string, got an array",
                "3 #2 invalid: field `image_key`: expected a string, got null",
                "4 #3 invalid: missing field `image_key`",
                "5 #4 invalid: field `size`: appears more than once in the task",
            ]
        );
        assert_eq!(items[5], "6 #5 ok id=esc img/a.jpg 1x1 key=img/a.jpg:1x1");
        let ok = r#"{"extra": {"deep": [1, {"x": null}]}, "image_key": "img/a.jpg", "size": "1x1", "\u0069d": "esc"}"#;
        assert_eq!(read(ok), ["1 #0 ok id=esc img/a.jpg 1x1 key=img/a.jpg:1x1"]);
    }

    #[test]
    fn control_characters_in_strings_are_file_errors() {
        assert_eq!(
            error_of(b"[{\"image_key\": \"img/a\nb.jpg\", \"size\": \"1x1\"}]"),
            "tasks.json:1:22: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
        );
        assert_eq!(
            strict_error_of(b"{\"image_key\": \"img/a\tb.jpg\", \"size\": \"1x1\"}\n"),
            "tasks.json:1:21: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
        );
        assert_eq!(
            strict_error_of(b"{\"x\": \"img/a\tb.jpg\", \"size\": \"1x1\"}\n"),
            "tasks.json:1:13: invalid JSON: control character (\\u0000-\\u001F) found while parsing a string"
        );
    }

    #[test]
    fn array_strings_with_escapes_and_brackets() {
        let input = concat!(
            r#"[{"image_key": "img/a\"]}.jpg", "size": "1x1", "x": "\\", "#,
            r#""y": ["]", "\\\"", "[[[", {"}": "{"}]},"#,
            "\n",
            r#" {"image_key": "img/ü\u00e9.jpg", "size": "2x2", "z": "é]"} x]"#
        );
        let items = read(input);
        assert_eq!(
            items[0],
            "1 #0 ok id=1 img/a\"]}.jpg 1x1 key=img/a\"]}.jpg:1x1"
        );
        assert_eq!(items[1], "2 #1 ok id=2 img/üé.jpg 2x2 key=img/üé.jpg:2x2");
        let second_line = input.split('\n').nth(1).unwrap();
        let column = second_line[..second_line.find(" x]").unwrap()]
            .chars()
            .count()
            + 2;
        assert_eq!(
            items[2],
            format!("error: tasks.json:2:{column}: expected ',' or ']' after a task, found 'x'")
        );
        // Brackets inside strings never count towards the depth limit.
        let quoted = format!(
            r#"[{{"x": "{}", "image_key": "img/a.jpg", "size": "1x1"}}]"#,
            "[{".repeat(200)
        );
        assert!(read(&quoted)[0].contains(" ok "));
    }

    #[test]
    fn word_at_a_time_scans_match_byte_loops() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        // Bytes near the lane tricks' edges: the targets, their neighbours, 0x00,
        // 0x1F/0x20, 0x7F/0x80, 0xFF.
        let alphabet = [
            b'"', b'\\', b'\n', b'!', b'#', b'[', b']', 0x00, 0x01, 0x1F, 0x20, 0x21, 0x7F, 0x80,
            0xFF, b'a', b'a', b'a', b'a', b'a',
        ];
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let hay: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let from = rng.random_range(0..=len);
            let naive = (from..len)
                .find(|&i| STRING_SPECIAL[hay[i] as usize])
                .unwrap_or(len);
            assert_eq!(
                skip_plain_string_bytes(&hay, from),
                naive,
                "{hay:?} from {from}"
            );
            for needle in [b'\n', b'"', 0x00, 0x80] {
                let naive = hay.iter().position(|&b| b == needle);
                assert_eq!(find_byte(needle, &hay), naive, "{hay:?} {needle}");
            }
        }
    }

    #[test]
    fn nothing_follows_an_error() {
        let mut reader = TaskReader::new(&b"[}"[..], "t", ReaderOptions::default());
        assert!(matches!(reader.next(), Some(Err(_))));
        assert!(reader.next().is_none());
        assert!(reader.next().is_none());
        let mut done = TaskReader::new(A.as_bytes(), "t", ReaderOptions::default());
        assert!(matches!(done.next(), Some(Ok(Record::Task { .. }))));
        assert!(done.next().is_none());
        assert!(done.next().is_none());
    }

    /// NDJSON (or a JSON array) of `count` tasks, produced as it is read.
    struct Generated {
        count: u64,
        next: u64,
        array: bool,
        pending: Vec<u8>,
        at: usize,
        produced: u64,
    }

    impl Read for Generated {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.pending.len() {
                self.pending.clear();
                self.at = 0;
                let first = self.next == 0;
                if self.next < self.count {
                    let sep = match (self.array, first) {
                        (true, true) => "[",
                        (true, false) => ",\n",
                        (false, _) => "",
                    };
                    write!(
                        self.pending,
                        r#"{sep}{{"image_key": "img/{:07}.jpg", "size": "200x200"}}"#,
                        self.next
                    )?;
                    if !self.array {
                        self.pending.push(b'\n');
                    }
                    self.next += 1;
                } else if self.array && self.next == self.count {
                    self.pending
                        .extend_from_slice(if first { b"[]" } else { b"\n]\n" });
                    self.next += 1;
                } else {
                    return Ok(0);
                }
            }
            let n = (self.pending.len() - self.at).min(out.len());
            out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            self.produced += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_million_records_stream_in_constant_memory() {
        for (array, count) in [(false, 1_000_000), (true, 100_000)] {
            let source = Generated {
                count,
                next: 0,
                array,
                pending: Vec::new(),
                at: 0,
                produced: 0,
            };
            let mut reader = TaskReader::new(
                BufReader::with_capacity(8192, source),
                "gen",
                ReaderOptions::default(),
            );
            let mut tasks = 0u64;
            let mut last_line = 0;
            for record in &mut reader {
                let Record::Task { line, index, task } = record.unwrap() else {
                    panic!("invalid record")
                };
                assert_eq!(index, tasks);
                assert_eq!(task.id, (index + 1).to_compact_string());
                last_line = line;
                tasks += 1;
            }
            assert_eq!(tasks, count);
            assert_eq!(last_line, count);
            // Only one record (~50 bytes) is ever held.
            assert!(
                reader.record_buffer_capacity() <= 128,
                "{}",
                reader.record_buffer_capacity()
            );
            assert!(reader.bytes_read() > count * 50);
        }
    }

    #[test]
    fn open_errors_name_the_path() {
        let missing = Path::new("no-such-dir/tasks.json");
        let e = open_path(missing, ReaderOptions::default()).unwrap_err();
        let os = io::Error::from(io::ErrorKind::NotFound);
        assert!(matches!(e.kind(), InputErrorKind::Open(ref io) if io.kind() == os.kind()));
        assert_eq!(e.line(), None);
        #[cfg(target_os = "linux")]
        assert_eq!(
            e.to_string(),
            "no-such-dir/tasks.json: cannot open: No such file or directory (os error 2)"
        );
        let dir = std::env::temp_dir();
        let e = open_path(&dir, ReaderOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot open: is a directory", dir.display())
        );
    }

    #[test]
    fn precheck_counts_or_fails() {
        let dir = std::env::temp_dir();
        let good = dir.join(format!("taskq-precheck-good-{}.ndjson", std::process::id()));
        let bad = dir.join(format!("taskq-precheck-bad-{}.json", std::process::id()));
        // An invalid task and two lines that are not JSON records: counted.
        let head = format!("{A}\n{B}\n[1]\n{{\"x\n");
        let tail = format!("{A}\n");
        std::fs::write(
            &good,
            [head.as_bytes(), b"\xFF\n", tail.as_bytes()].concat(),
        )
        .unwrap();
        std::fs::write(&bad, format!("[\n{A},\n{B}\n")).unwrap();
        let counted = precheck_path(&good, ReaderOptions::default());
        let strict = ReaderOptions {
            strict: true,
            ..ReaderOptions::default()
        };
        let refused = precheck_path(&good, strict);
        let failed = precheck_path(&bad, ReaderOptions::default());
        let _ = std::fs::remove_file(&good);
        let _ = std::fs::remove_file(&bad);
        assert_eq!(
            counted.unwrap(),
            Precheck {
                tasks: 3,
                invalid: 3,
                format: InputFormat::Ndjson
            }
        );
        // Strict: the first invalid record, an invalid task on line 3.
        let e = refused.unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(3), None));
        assert!(matches!(e.kind(), InputErrorKind::InvalidTask(_)));
        let e = failed.unwrap_err();
        assert_eq!(e.source_name(), bad.display().to_string());
        assert_eq!(e.line(), Some(4));
        assert!(matches!(e.kind(), InputErrorKind::Truncated(_)));
    }

    #[test]
    fn out_of_range_numbers_are_numbers_of_the_wrong_kind() {
        let task = |field: &str, value: &str| {
            let mut fields = vec![
                ("image_key", "\"img/a.jpg\""),
                ("size", "\"1x1\""),
                ("other", "1e999"),
            ];
            fields.retain(|&(name, _)| name != field);
            fields.push((field, value));
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            format!("{{{}}}", fields.join(", "))
        };
        let long = format!("1{}", "0".repeat(400));
        let input = [
            task("image_key", "1e999"),
            task("size", "-1e999"),
            task("id", "1E400"),
            task("id", &long),
            task("idempotency_key", "123456789e300"),
            task("id", "[1e999]"),
            task("id", "-1e-999"),
            format!("{{\"id\": 1e999, {}", &task("id", "2")[1..]),
            "1e999".to_owned(),
            "-1e999".to_owned(),
            "[1e999]".to_owned(),
            task("id", "7"),
        ]
        .join("\n");
        let got_number = "expected a string, got a number";
        let not_an_id = "expected a string or a non-negative integer";
        assert_eq!(
            read(&input),
            [
                format!("1 #0 invalid: field `image_key`: {got_number}"),
                format!("2 #1 invalid: field `size`: {got_number}"),
                format!("3 #2 invalid: field `id`: {not_an_id}, got a number"),
                format!("4 #3 invalid: field `id`: {not_an_id}, got a number"),
                format!("5 #4 invalid: field `idempotency_key`: {got_number}"),
                format!("6 #5 invalid: field `id`: {not_an_id}, got an array"),
                format!("7 #6 invalid: field `id`: {not_an_id}, got -0"),
                "8 #7 invalid: field `id`: appears more than once in the task".to_owned(),
                "9 #8 invalid: expected a JSON object for a task, got a number".to_owned(),
                "10 #9 invalid: expected a JSON object for a task, got a number".to_owned(),
                "11 #10 invalid: expected a JSON object for a task, got an array".to_owned(),
                "12 #11 ok id=7 img/a.jpg 1x1 key=img/a.jpg:1x1".to_owned(),
            ]
        );
        assert_eq!(
            read("[1e999, {\"image_key\": \"img/a.jpg\", \"size\": -1e999},\n2e308]"),
            [
                "1 #0 invalid: expected a JSON object for a task, got a number",
                "1 #1 invalid: field `size`: expected a string, got a number",
                "2 #2 invalid: expected a JSON object for a task, got a number",
            ]
        );
        // Any other error in the record is reported as if the big number were a
        // small one, at the same place.
        for broken in [
            "{\"id\": NUM \"size\": \"1x1\"}\n",
            "{\"id\": NUM, \"image_key\": \"\\ud800\"}\n",
            "[{\"x\": [NUM, NUM], \"id\": NUM}, {\"id\": NUM}x]",
            "[{\"id\": -NUM}}]",
            "{\"id\": [NUM}\n",
            "[NUM x]",
        ] {
            // An NDJSON line is read strictly, to end in the error.
            let error = |text: String| match text.starts_with('{') {
                true => strict_error_of(text.as_bytes()),
                false => error_of(text.as_bytes()),
            };
            let big = error(broken.replace("NUM", "1e999"));
            let small = error(broken.replace("NUM", "12345"));
            assert_eq!(big, small, "{broken}");
            assert!(!big.contains("out of range"), "{big}");
        }
        assert_eq!(number_len(b"-0.5e+10,"), 8);
        assert_eq!(number_len(b"01"), 1);
        assert_eq!(number_len(b"1.e5"), 1);
        assert_eq!(number_len(b"1e"), 1);
        assert_eq!(number_len(b"-x"), 0);
        let text = r#"{"a": "1e999", "b\"": [1e999, 1e308, -2e308]}"#;
        let (first, second) = (text.find("[1e999").unwrap() + 1, text.find("-2e").unwrap());
        assert_eq!(big_numbers(text), [first..first + 5, second..second + 6]);
        assert_eq!(
            replace_numbers(text, &big_numbers(text), b'1'),
            r#"{"a": "1e999", "b\"": [1    , 1e308, -1    ]}"#
        );
    }

    #[test]
    fn messages_escape_invisible_characters() {
        assert_eq!(
            error_of(b"[tc\x1bc]"),
            "tasks.json:1:2: invalid JSON: `tc\\u{1b}c` is not a JSON value"
        );
        assert_eq!(
            error_of(b"[1\x08\x08]"),
            "tasks.json:1:2: invalid JSON: `1\\u{8}\\u{8}` is not a JSON value"
        );
        assert_eq!(
            error_of("\u{85}[]".as_bytes()),
            format!("tasks.json:1:1: {FILE_ERROR}, found '\\u{{85}}'")
        );
        assert_eq!(
            error_of("[\u{9b}31m]".as_bytes()),
            "tasks.json:1:2: expected a task object or ']' after '[', found '\\u{9b}'"
        );
        assert_eq!(
            error_of("[]\u{202E}".as_bytes()),
            "tasks.json:1:3: unexpected '\\u{202e}' after the closing ']' of the task array \
             (only whitespace may follow it)"
        );
        assert_eq!(
            escape_invisible("a\u{200B}b\u{2066}c\u{AD}\u{E0041}\u{7F}é日"),
            "a\\u{200b}b\\u{2066}c\\u{ad}\\u{e0041}\\u{7f}é日"
        );
        assert!(matches!(escape_invisible("img/ü.jpg"), Cow::Borrowed(_)));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if c.is_control() {
                assert!(is_invisible(c), "{c:?}");
            }
        }
    }

    /// One step of a [`Script`].
    enum Step {
        Bytes(&'static [u8]),
        End,
        Interrupted,
    }

    /// A `Read` that plays its steps, then fails the test: a read after the
    /// last step is a read after the end of the input.
    struct Script(std::collections::VecDeque<Step>);

    impl Read for Script {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                Some(Step::Bytes(b)) => {
                    out[..b.len()].copy_from_slice(b);
                    Ok(b.len())
                }
                Some(Step::End) => Ok(0),
                Some(Step::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
                None => panic!("read after the end of the input"),
            }
        }
    }

    fn play(steps: Vec<Step>) -> Vec<String> {
        let reader = BufReader::new(Script(steps.into()));
        TaskReader::new(reader, "tty", ReaderOptions::default())
            .map(describe)
            .collect()
    }

    #[test]
    fn the_end_of_the_input_is_read_once() {
        let a = b"{\"image_key\": \"img/a.jpg\", \"size\": \"200x200\"}";
        let ok = "1 #0 ok id=1 img/a.jpg 200x200 key=img/a.jpg:200x200";
        use Step::*;
        // Interrupted reads are retried, before the end of the input...
        assert_eq!(
            play(vec![
                Interrupted,
                Bytes(b"["),
                Interrupted,
                Bytes(a),
                Bytes(b"]"),
                End
            ]),
            [ok]
        );
        // ...but the end is final: nothing is read after it, however the input
        // ends (Ctrl-D on a terminal is an end).
        assert_eq!(play(vec![Bytes(a), End]), [ok]);
        assert_eq!(play(vec![Bytes(a), Bytes(b"\n \n"), End]), [ok]);
        assert_eq!(play(vec![Bytes(b"[]"), End]), Vec::<String>::new());
        assert_eq!(
            play(vec![Bytes(b"["), Bytes(a), End]),
            [
                ok,
                "error: tty:1:47: unexpected end of file: the task array opened on line 1 \
                 is not closed (expected ',' or ']')"
            ]
        );
        assert_eq!(
            play(vec![Bytes(b"[tru"), End]),
            ["error: tty:1:2: invalid JSON: `tru` is not a JSON value"]
        );
        assert_eq!(
            play(vec![Bytes(b"\xEF"), End]),
            ["error: tty:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"]
        );
        assert_eq!(
            play(vec![End]),
            [format!("error: tty:1:1: {FILE_ERROR}, found end of file")]
        );
    }

    #[test]
    fn the_first_limit_crossed_wins_whatever_the_chunking() {
        let options = ReaderOptions {
            max_record_bytes: 20,
            max_depth: 2,
            ..Default::default()
        };
        let too_big = "a task record longer than 20 bytes starts here; \
                       each task must fit in 20 bytes (max_record_bytes)";
        let too_deep = "task nests arrays/objects deeper than 2 levels (max_depth)";
        let padded = |n: usize| format!(r#"{{"p": "{}", "a": [[1]]}}"#, "x".repeat(n));
        for (record, says) in [
            // The third level opens at byte 7 of the record (0-based), the size
            // limit is passed at byte 20.
            (
                r#"{"a": [[1]], "pad": "xxxxxxxxxxxxxxxx"}"#.to_owned(),
                too_deep,
            ),
            (
                r#"{"pad": "xxxxxxxxxxxxxxxx", "a": [[1]]}"#.to_owned(),
                too_big,
            ),
            // The third level opens at byte 19 (the last one allowed) or 20.
            (padded(3), too_deep),
            (padded(4), too_big),
        ] {
            let third = record.find("[[").unwrap() + 1;
            // A depth error is placed on the bracket, a size error at the start
            // of the record (column 1 in NDJSON, 2 in the array).
            let at = if says == too_deep { third + 1 } else { 1 };
            let (array, ndjson) = (format!("[{record}]"), format!("{record}\n"));
            let strict = ReaderOptions {
                strict: true,
                ..options
            };
            // Read leniently, the NDJSON line is one invalid record saying the
            // same (a depth error names its column).
            let lenient = match says == too_deep {
                true => format!(
                    "1 #0 invalid: nests arrays/objects deeper than 2 levels at column {at} \
                     (max_depth)"
                ),
                false => "1 #0 invalid: longer than 20 bytes (max_record_bytes); each task \
                          must fit in 20 bytes, the rest of the line was skipped"
                    .to_owned(),
            };
            for (input, column, options, lenient) in [
                (&array, at + 1, options, None),
                (&ndjson, at, strict, None),
                (&ndjson, at, options, Some(lenient)),
            ] {
                let expected = [lenient.unwrap_or(format!("error: tasks.json:1:{column}: {says}"))];
                assert_eq!(read_with(input.as_bytes(), options), expected);
                for capacity in [2, 3, 7, 16, 21] {
                    let chunked = BufReader::with_capacity(capacity, input.as_bytes());
                    let items: Vec<String> = TaskReader::new(chunked, "tasks.json", options)
                        .map(describe)
                        .collect();
                    assert_eq!(items, expected, "{input:?} in chunks of {capacity}");
                }
            }
        }
    }

    #[test]
    fn a_short_first_read_of_0xef_is_not_a_broken_bom() {
        let ndjson = ReaderOptions {
            format: InputFormat::Ndjson,
            ..Default::default()
        };
        // U+FF5B and U+F000 start with 0xEF; `read_with` also reads them one
        // byte at a time.
        let brace = "\u{FF5B}\"image_key\": \"img/a.jpg\"}\n";
        assert_eq!(
            read_with(brace.as_bytes(), ReaderOptions::default()),
            [format!(
                "error: tasks.json:1:1: {FILE_ERROR}, found '\u{FF5B}'"
            )]
        );
        assert_eq!(
            read_with(brace.as_bytes(), ndjson),
            ["1 #0 invalid: not JSON: expected value at column 1"]
        );
        assert_eq!(
            read_with("\u{F000}".as_bytes(), ReaderOptions::default()),
            [format!(
                "error: tasks.json:1:1: {FILE_ERROR}, found '\u{F000}'"
            )]
        );
        // A BOM split across reads is still a BOM, and what follows it is read
        // from the right place.
        for capacity in [1, 2, 4] {
            for input in [format!("\u{FEFF}[{A}]"), format!("\u{FEFF}\n{A}")] {
                let reader = BufReader::with_capacity(capacity, input.as_bytes());
                let items: Vec<String> = TaskReader::new(reader, "t", ReaderOptions::default())
                    .map(describe)
                    .collect();
                assert_eq!(items.len(), 1, "{items:?}");
                assert!(items[0].contains(" ok "), "{items:?}");
            }
        }
        // A partial BOM, then something else: the bytes are put back and read.
        for input in [&b"\xEF\xBB[]"[..], b"\xEF\xBB", b"\xEF", b"\xEF["] {
            assert_eq!(
                error_of(input),
                "tasks.json:1:1: invalid UTF-8 (byte 0xEF); task files must be UTF-8 text"
            );
        }
        assert_eq!(
            read_with("\u{FEFF}\u{FEFF}[]".as_bytes(), ReaderOptions::default()),
            [format!(
                "error: tasks.json:1:1: {FILE_ERROR}, found '\\u{{feff}}'"
            )]
        );
    }

    #[test]
    fn format_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&InputFormat::Ndjson).unwrap(),
            "\"ndjson\""
        );
        assert_eq!(InputFormat::default(), InputFormat::Auto);
    }
}
