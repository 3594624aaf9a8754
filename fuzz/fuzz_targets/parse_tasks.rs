//! Arbitrary bytes through the streaming task reader, in every format, with
//! default and tight limits, leniently and strictly. It must never panic, must
//! yield records, then at most one error, then `None` for good, and must give
//! the same items whether it reads the bytes in one piece or one byte per
//! `read`. Read as NDJSON it resyncs at each newline: one record per non-blank
//! line, on that line, and no error. Read strictly it gives the lenient items
//! up to the first invalid record, which becomes the one error, on its line.
#![no_main]

use std::io::{self, BufReader, Read};

use libfuzzer_sys::fuzz_target;
use taskq_cli::input::{InputError, InputFormat, ReaderOptions, Record, TaskReader};

/// One item as text, without the parse time.
fn describe(item: &Result<Record, InputError>) -> String {
    match item {
        Ok(Record::Task { line, index, task }) => format!(
            "{line} #{index} ok {:?} {:?} {} {:?}",
            task.id(), task.image_key(), task.size(), task.idempotency_key()
        ),
        Ok(Record::Invalid { line, index, error }) => format!("{line} #{index} invalid: {error}"),
        Err(e) => format!("error: {e}"),
    }
}

/// Reads everything, checking the contract on the way.
fn read_all<R: io::BufRead>(reader: R, len: usize, options: ReaderOptions) -> Vec<String> {
    let mut reader = TaskReader::new(reader, "fuzz", options);
    let mut items = Vec::new();
    while let Some(item) = reader.next() {
        let failed = item.is_err();
        items.push(describe(&item));
        if failed {
            break;
        }
        // Every record consumes at least one byte.
        assert!(items.len() <= len, "more records than bytes");
    }
    for _ in 0..2 {
        assert!(reader.next().is_none(), "an item after the end or an error");
    }
    items
}

/// A `Read` that hands out one byte per call.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), out.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// The 1-based numbers of the lines of `data` that hold more than whitespace
/// (space, tab, CR).
fn non_blank_lines(data: &[u8]) -> Vec<u64> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

/// Reads `data` whole and one byte per `read`, checks both agree, returns the items.
fn read_both(data: &[u8], options: ReaderOptions) -> Vec<String> {
    let whole = read_all(data, data.len(), options);
    let one_byte = read_all(BufReader::new(OneByte(data)), data.len(), options);
    if whole != one_byte {
        panic!("chunking changed the result:\n  whole:    {whole:?}\n  one byte: {one_byte:?}");
    }
    whole
}

fuzz_target!(|data: &[u8]| {
    for format in [InputFormat::Auto, InputFormat::Json, InputFormat::Ndjson] {
        for (max_record_bytes, max_depth) in [(1 << 20, 64), (64, 64), (1 << 20, 3), (16, 2)] {
            let options = ReaderOptions {
                format,
                max_record_bytes,
                max_depth,
                strict: false,
            };
            let lenient = read_both(data, options);
            let strict = read_both(
                data,
                ReaderOptions {
                    strict: true,
                    ..options
                },
            );
            if format == InputFormat::Ndjson {
                let lines = non_blank_lines(data);
                assert_eq!(
                    lenient.len(),
                    lines.len(),
                    "one record per non-blank line: {lenient:?}"
                );
                for (index, (item, line)) in lenient.iter().zip(&lines).enumerate() {
                    let prefix = format!("{line} #{index} ");
                    assert!(
                        item.starts_with(&prefix),
                        "{item:?} should start with {prefix:?}"
                    );
                }
            }
            match lenient.iter().position(|item| item.contains(" invalid: ")) {
                None => assert_eq!(strict, lenient, "strict differs without an invalid record"),
                Some(first) => {
                    assert_eq!(strict.len(), first + 1, "strict goes on: {strict:?}");
                    assert_eq!(strict[..first], lenient[..first]);
                    let line = lenient[first].split(' ').next().unwrap_or_default();
                    let at = format!("error: fuzz:{line}:");
                    assert!(
                        strict[first].starts_with(&at),
                        "{:?} should start with {at:?}",
                        strict[first]
                    );
                }
            }
        }
    }
});
