//! Reading one element of a JSON array: its bytes are copied into the record
//! buffer as they stream by, up to the byte that closes the element.
//!
//! Invariant: the buffer never holds more than `max_record_bytes`. A longer
//! element, nesting past `max_depth` or an element cut off by the end of the
//! file is an [`InputError`]: past it, the rest of the array cannot be found.

use std::io::BufRead;

use serde::de::IgnoredAny;

use super::error::escape_invisible;
use super::scan::{scan_chunk, Scan, ScanStop};
use super::{InputError, InputErrorKind, Record, TaskReader};

impl<R: BufRead> TaskReader<R> {
    /// Reads one array element starting with `first` (not yet consumed).
    pub(super) fn read_element(&mut self, first: u8) -> Result<Record, InputError> {
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

    /// Copies an array element that starts with `{`, `[` or `"` into `buf` until
    /// it ends; `Ok(false)` at EOF first.
    pub(super) fn copy_nested(&mut self, line: u64, column: u64) -> Result<bool, InputError> {
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
    pub(super) fn copy_scalar(&mut self, line: u64, column: u64) -> Result<(), InputError> {
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
    pub(super) fn truncated_record(&self, line: u64, column: u64) -> InputError {
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
}
