//! The byte layer under the reader: [`Source`] (the caller's `BufRead` with
//! `Interrupted` retried, its end latched, and room to put back a false
//! byte-order mark), the [`Cursor`] that counts lines and columns, the chunk
//! scanner that finds where an array element ends, the word-at-a-time (SWAR)
//! byte searches, and the depth check on a buffered record.
//!
//! Invariant: where a record ends, and the line and column of everything in
//! it, come out the same however the input is split into chunks (the tests
//! read each input whole and a byte at a time, and compare).

use std::io::{self, BufRead};

use super::{InputError, TaskReader};

/// Where the scanner is: the offset of the next unconsumed byte and its line.
///
/// Columns are derived: bytes since the line start, less the UTF-8 continuation
/// bytes among them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cursor {
    pub(super) offset: u64,
    pub(super) line: u64,
    pub(super) line_start: u64,
    pub(super) line_continuations: u64,
}

impl Cursor {
    pub(super) fn new() -> Self {
        Cursor {
            offset: 0,
            line: 1,
            line_start: 0,
            line_continuations: 0,
        }
    }

    /// Records a `\n` at absolute offset `at`.
    #[inline]
    pub(super) fn newline(&mut self, at: u64) {
        self.line += 1;
        self.line_start = at + 1;
        self.line_continuations = 0;
    }

    /// Records a non-ASCII byte (only continuation bytes shift columns).
    #[inline]
    pub(super) fn non_ascii(&mut self, b: u8) {
        if b & 0xC0 == 0x80 {
            self.line_continuations += 1;
        }
    }

    /// The 1-based character column of absolute offset `at` on the current line.
    pub(super) fn column_at(&self, at: u64) -> u64 {
        at.saturating_sub(self.line_start)
            .saturating_sub(self.line_continuations)
            + 1
    }

    pub(super) fn here(&self) -> (u64, u64) {
        (self.line, self.column_at(self.offset))
    }
}

/// String and bracket state while a record is copied.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Scan {
    in_string: bool,
    escape: bool,
    depth: usize,
}

/// How a chunk scan ended early.
pub(super) enum ScanStop {
    /// Nesting went past the limit at the bracket at this index of the chunk,
    /// which is at this line and column.
    TooDeep { at: usize, line: u64, column: u64 },
}

/// Bytes that end the fast skip inside a string: `"`, `\`, controls, non-ASCII.
pub(super) static STRING_SPECIAL: [bool; 256] = {
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
pub(super) fn scan_chunk(
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
pub(super) fn skip_plain_string_bytes(chunk: &[u8], mut i: usize) -> usize {
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
pub(super) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
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
pub(super) fn too_deep_at(record: &[u8], max_depth: usize) -> Option<usize> {
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
pub(super) struct Source<R> {
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
    pub(super) fn new(inner: R) -> Self {
        Source {
            inner,
            back: [0; 2],
            back_at: 0,
            back_len: 0,
            ended: false,
        }
    }

    /// The next bytes, without consuming them; empty at the end of the input.
    pub(super) fn fill(&mut self) -> io::Result<&[u8]> {
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
    pub(super) fn consume(&mut self, n: usize) {
        let back = n.min(self.back_len - self.back_at);
        self.back_at += back;
        if n > back {
            self.inner.consume(n - back);
        }
    }

    /// Puts `bytes` (at most two, consumed last) back in front of the input.
    pub(super) fn unread(&mut self, bytes: &[u8]) {
        debug_assert!(self.back_at == self.back_len && bytes.len() <= self.back.len());
        self.back[..bytes.len()].copy_from_slice(bytes);
        self.back_at = 0;
        self.back_len = bytes.len();
    }
}

impl<R: BufRead> TaskReader<R> {
    /// Skips a UTF-8 byte-order mark at the start of the input.
    ///
    /// A first read may return fewer than three bytes, so the mark is matched a
    /// piece at a time; when the input turns out not to start with one (valid
    /// UTF-8 such as U+FF5B also starts with 0xEF), the bytes matched so far are
    /// put back, to be read as what they are.
    pub(super) fn skip_bom(&mut self) -> Result<(), InputError> {
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
}
