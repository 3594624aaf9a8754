//! File-level errors of the task reader: [`InputError`], its [`InputErrorKind`],
//! the `:line:column` it names, and the escaping that makes input text safe to
//! show in a message.
//!
//! Invariant: an [`InputError`] names a position in the file (1-based line,
//! column in characters), never one inside the record buffer: a position found
//! in a record is mapped back to the file by `buf_position`.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead};

use super::TaskReader;
use taskq::task::TaskError;

/// Why a task file cannot be read further, and where.
///
/// Displays as `{file}:{line}:{column}: {what}` (line and column when known,
/// both 1-based; columns count characters).
#[derive(Debug, thiserror::Error)]
#[error("{source_name}{at}: {kind}")]
pub struct InputError {
    pub(super) source_name: String,
    pub(super) at: Location,
    pub(super) kind: InputErrorKind,
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
    /// A record is longer than
    /// [`ReaderOptions::max_record_bytes`](super::ReaderOptions::max_record_bytes).
    #[error(
        "a task record longer than {limit} bytes starts here; \
         each task must fit in {limit} bytes (max_record_bytes)"
    )]
    RecordTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A record nests arrays or objects deeper than
    /// [`ReaderOptions::max_depth`](super::ReaderOptions::max_depth).
    #[error("task nests arrays/objects deeper than {limit} levels (max_depth)")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// With [`ReaderOptions::strict`](super::ReaderOptions::strict): a
    /// well-formed record that is not a valid task.
    #[error("invalid task: {0} (strict: the first invalid record fails the run)")]
    InvalidTask(TaskError),
}

/// `:line:column`, `:line` or nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) line: Option<u64>,
    pub(super) column: Option<u64>,
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

impl<R: BufRead> TaskReader<R> {
    pub(super) fn error(&self, line: u64, column: u64, kind: InputErrorKind) -> InputError {
        InputError {
            source_name: self.source.clone(),
            at: Location {
                line: Some(line),
                column: Some(column),
            },
            kind,
        }
    }

    pub(super) fn read_error(&self, e: io::Error) -> InputError {
        InputError {
            source_name: self.source.clone(),
            at: Location {
                line: Some(self.cur.line),
                column: None,
            },
            kind: InputErrorKind::Read(e),
        }
    }

    /// The file line and column of byte `offset` of the record in `buf`, which
    /// starts at `line`, `column`.
    pub(super) fn buf_position(&self, offset: usize, line: u64, column: u64) -> (u64, u64) {
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
    pub(super) fn json_error(&self, e: &serde_json::Error, line: u64, column: u64) -> InputError {
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
}

/// Whether showing `c` as it is could hide or rewrite text on a terminal: a
/// control character (C0, DEL, C1: ESC, backspace, CSI, NEL...), a bidirectional
/// override or isolate, a line or paragraph separator, or an invisible format
/// character (zero-width ones, the soft hyphen, the BOM, tag characters).
pub(super) fn is_invisible(c: char) -> bool {
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
pub(super) fn escape_invisible(text: &str) -> Cow<'_, str> {
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

/// Re-labels a syntax error found during format detection as a format error.
pub(super) fn as_format_error(mut e: InputError) -> InputError {
    if let InputErrorKind::Syntax(message) = e.kind {
        e.kind = InputErrorKind::Format(message);
    }
    e
}
