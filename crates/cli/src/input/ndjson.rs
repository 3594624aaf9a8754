//! Reading one NDJSON line, and going on at the next newline when the line is
//! not a JSON record.
//!
//! Invariant: a broken line costs only itself. Unless the reader is strict, it
//! is one [`Record::Invalid`] ([`TaskError::Malformed`]) and the next line is
//! read as usual; of an over-long line at most `max_record_bytes` are
//! buffered, and the rest is skipped as it streams by.

use std::io::BufRead;

use super::scan::{find_byte, too_deep_at};
use super::{InputError, InputErrorKind, Record, TaskReader};
use taskq::task::TaskError;

impl<R: BufRead> TaskReader<R> {
    /// Reads one NDJSON line starting at the next (non-blank) byte; the `\n` is
    /// left for the next whitespace skip.
    ///
    /// A line that is not a JSON record (not UTF-8, not JSON, too deep, too
    /// long) is one [`Record::Invalid`]: the reader resyncs at the next newline.
    /// Of a line longer than the limit only the first `max_record_bytes` are
    /// kept (to find nesting past the depth limit there first); the rest is
    /// consumed as it streams by. With [`ReaderOptions::strict`] such a line is
    /// the [`InputError`] it would be in an array, and the line is left unread.
    pub(super) fn read_line(&mut self) -> Result<Record, InputError> {
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
    pub(super) fn invalid_line(
        &self,
        line: u64,
        index: u64,
        e: InputError,
    ) -> Result<Record, InputError> {
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
    pub(super) fn too_deep_in_line(&self, line: u64, column: u64) -> Option<InputError> {
        let offset = too_deep_at(&self.buf, self.options.max_depth)?;
        let (l, c) = self.buf_position(offset, line, column);
        let limit = self.options.max_depth;
        Some(self.error(l, c, InputErrorKind::TooDeep { limit }))
    }
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
