//! The size and depth limits, NDJSON resync after a broken line, strict mode,
//! and constant memory over a long stream.

use std::io::{self, BufReader, Read, Write};

use compact_str::ToCompactString;

use super::*;

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
    let mut reader = TaskReader::new(endless("[", b' ', 8 << 20), "t", ReaderOptions::default());
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
            assert_eq!(task.id(), (index + 1).to_compact_string());
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
