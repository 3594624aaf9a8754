//! Properties of the streaming task reader ([`taskq_cli::input::TaskReader`]) over
//! in-memory bytes: it never panics, it keeps its "records, then at most one
//! error, then nothing" contract on any input, it reads every well-formed JSON
//! value as exactly one record, valid tasks round-trip with their line numbers in
//! both formats, and how the bytes are chunked never changes the result.
//!
//! NDJSON resyncs at each newline: read as NDJSON, any bytes give exactly one
//! record per non-blank line, on that line, and never an error; what a line
//! gives does not depend on the other lines. Read strictly, any input gives the
//! same items up to its first invalid record, which becomes the one error.
//!
//! The case count is kept modest (`CASES`) so the file runs in a few seconds; set
//! `PROPTEST_CASES` to run more.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use taskq_bench::generate::{generate_tasks, write_tasks, GenerateOptions, OutputFormat};
use taskq_cli::input::{
    InputError, InputErrorKind, InputFormat, ReaderOptions, Record, TaskReader, DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_RECORD_BYTES,
};

/// Cases per property, unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are shrunk and printed; no regression files are written
        // into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ALL_FORMATS: [InputFormat; 3] = [InputFormat::Auto, InputFormat::Json, InputFormat::Ndjson];

// ---------------------------------------------------------------------------
// Reading helpers
// ---------------------------------------------------------------------------

/// One reader item as a comparable line; a task's `created_at` (the parse time)
/// is left out.
fn describe(item: &Result<Record, InputError>) -> String {
    match item {
        Ok(Record::Task { line, index, task }) => format!(
            "{line} #{index} ok id={:?} key={:?} size={} idem={:?} attempts={}",
            task.id(),
            task.image_key(),
            task.size(),
            task.idempotency_key(),
            task.attempts()
        ),
        Ok(Record::Invalid { line, index, error }) => format!("{line} #{index} invalid: {error}"),
        Err(e) => format!("error: {e}"),
    }
}

/// Reads `reader` to its end and checks the iterator contract on the way: any
/// number of records, then at most one error, then `None` for good; never more
/// records than bytes (each record consumes at least one byte). Returns each
/// item as a [`describe`] line.
fn read_all<R: BufRead>(reader: R, len: usize, options: ReaderOptions) -> Vec<String> {
    let mut reader = TaskReader::new(reader, "input", options);
    let mut items = Vec::new();
    loop {
        match reader.next() {
            None => break,
            Some(item) => {
                let failed = item.is_err();
                if let Err(e) = &item {
                    // Every error but a read error is placed on a line.
                    assert_eq!(e.source_name(), "input");
                    if !matches!(e.kind(), InputErrorKind::Read(_)) {
                        assert!(e.line().is_some(), "an error without a line: {e}");
                    }
                    // One line, like the CLI prints it.
                    assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}");
                }
                items.push(describe(&item));
                if failed {
                    break;
                }
            }
        }
        assert!(
            items.len() <= len + 1,
            "more records than bytes: the reader does not advance ({items:?})"
        );
    }
    for _ in 0..3 {
        assert!(reader.next().is_none(), "an item after the end: {items:?}");
    }
    items
}

/// Reads `bytes` in one piece.
fn read_bytes(bytes: &[u8], options: ReaderOptions) -> Vec<String> {
    read_all(bytes, bytes.len(), options)
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

/// A `BufRead` whose `fill_buf` exposes the data in chunks of the given sizes
/// (cycled), returning `Interrupted` before some of them, and failing for good
/// with an error after `fail_at` bytes when set.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    /// The end of the current chunk.
    end: usize,
    sizes: VecDeque<usize>,
    interrupts: VecDeque<bool>,
    fail_at: Option<usize>,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: &[usize], interrupts: &[bool], fail_at: Option<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            end: 0,
            sizes: sizes.iter().map(|&s| s.max(1)).collect(),
            interrupts: interrupts.iter().copied().collect(),
            fail_at,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let chunk = self.fill_buf()?;
            let n = chunk.len().min(out.len());
            out[..n].copy_from_slice(&chunk[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Chunked<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                return Err(io::Error::other("disk on fire"));
            }
            if let Some(interrupt) = self.interrupts.pop_front() {
                self.interrupts.push_back(false);
                if interrupt {
                    return Err(io::ErrorKind::Interrupted.into());
                }
            }
            let size = self.sizes.pop_front().unwrap_or(1);
            self.sizes.push_back(size);
            let mut end = (self.pos + size).min(self.data.len());
            if let Some(at) = self.fail_at {
                if self.pos < at {
                    end = end.min(at);
                }
            }
            self.end = end;
        }
        Ok(&self.data[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        assert!(self.pos + n <= self.end, "consumed more than was filled");
        self.pos += n;
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Reader options, mostly the defaults, sometimes tiny limits.
fn options() -> impl Strategy<Value = ReaderOptions> {
    (
        select(ALL_FORMATS.to_vec()),
        prop_oneof![
            3 => Just(DEFAULT_MAX_RECORD_BYTES),
            1 => 0usize..=256,
        ],
        prop_oneof![
            3 => Just(DEFAULT_MAX_DEPTH),
            1 => 0usize..=8,
            1 => 100usize..=200,
        ],
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(format, max_record_bytes, max_depth, strict)| ReaderOptions {
                format,
                max_record_bytes,
                max_depth,
                strict,
            },
        )
}

/// Bytes that matter to a JSON scanner, and their neighbours.
const JSONISH: &[u8] =
    b"[]{}\":,\\ \n\r\t0123456789-+.eEtrufalsnxX/u\x00\x1f\x7f\x80\xbf\xc3\xe6\xef\xbb\xf0\xff";

/// Arbitrary bytes, and bytes drawn mostly from [`JSONISH`].
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        vec(
            prop_oneof![4 => select(JSONISH.to_vec()), 1 => any::<u8>()],
            0..256
        ),
        // A plausible start, then noise.
        (
            select(vec![
                &b"["[..],
                b"{",
                b"\xEF\xBB\xBF[",
                b"[{\"image_key\":",
                b" \n{"
            ]),
            vec(select(JSONISH.to_vec()), 0..200),
        )
            .prop_map(|(head, tail)| [head, &tail[..]].concat()),
    ]
}

/// A JSON object key: mostly arbitrary, often one of the task's fields.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => ".{0,12}",
        1 => select(vec!["image_key", "size", "id", "idempotency_key"]).prop_map(str::to_owned),
    ]
}

/// Any JSON value, at most 4 levels deep and about 64 nodes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,16}".prop_map(Value::String),
        // Strings the validation cares about.
        select(vec![
            "200x200",
            "0x0",
            "img/a.jpg",
            "../x",
            "/etc/passwd",
            "C:/x",
            "a\\b",
            "a\u{0}b",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((json_key(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One segment of a valid image key (never `.` or `..`, no `:` so no drive prefix).
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_ü日本é-]{1,8}(\\.[a-z]{1,4})?"
}

/// A valid image key: 1 to 4 segments joined by `/`.
fn image_key() -> impl Strategy<Value = String> {
    vec(segment(), 1..=4).prop_map(|s| s.join("/"))
}

/// A valid idempotency key: non-empty, no control characters, at most 1024 bytes.
fn idempotency_key() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{1,24}", Just("k".repeat(1024))]
}

/// A valid size.
fn size() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        3 => (1u32..=10_000, 1u32..=10_000),
        1 => select(vec![(1, 1), (10_000, 10_000), (1, 10_000), (200, 200)]),
    ]
}

/// The id a task file may give.
#[derive(Clone, Debug)]
enum Id {
    Str(String),
    Num(u64),
    Null,
}

fn id() -> impl Strategy<Value = Option<Id>> {
    prop::option::of(prop_oneof![
        // Ids are labels: any string is accepted.
        ".{0,12}".prop_map(Id::Str),
        any::<u64>().prop_map(Id::Num),
        Just(Id::Null),
    ])
}

/// A valid task as a file would hold it.
#[derive(Clone, Debug)]
struct Spec {
    id: Option<Id>,
    image_key: String,
    size: (u32, u32),
    idempotency_key: Option<String>,
    /// Unknown fields, ignored by the reader.
    extra: Vec<(String, Value)>,
    /// Write every string character as a `\uXXXX` escape.
    escaped: bool,
    /// Write the object over several lines.
    pretty: bool,
}

fn unknown_field() -> impl Strategy<Value = (String, Value)> {
    (
        ".{0,10}".prop_filter("not a task field", |k| {
            !matches!(k.as_str(), "image_key" | "size" | "id" | "idempotency_key")
        }),
        json_value(),
    )
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        id(),
        image_key(),
        size(),
        prop::option::of(idempotency_key()),
        vec(unknown_field(), 0..3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(id, image_key, size, idempotency_key, extra, escaped, pretty)| Spec {
                id,
                image_key,
                size,
                idempotency_key,
                extra,
                escaped,
                pretty,
            },
        )
}

/// A JSON string literal for `s`: serde_json's, or every character escaped.
fn string_literal(s: &str, escaped: bool) -> String {
    if !escaped {
        return serde_json::to_string(s).unwrap();
    }
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        write!(out, "\\u{unit:04x}").unwrap();
    }
    out.push('"');
    out
}

impl Spec {
    /// The object's text, fields in a fixed but unusual order (unknown fields
    /// first, `size` before `image_key`); over several lines when `pretty`.
    fn to_json(&self) -> String {
        let mut fields: Vec<(String, String)> = self
            .extra
            .iter()
            .map(|(k, v)| {
                (
                    string_literal(k, self.escaped),
                    serde_json::to_string(v).unwrap(),
                )
            })
            .collect();
        let (w, h) = self.size;
        let key = |k: &str| string_literal(k, self.escaped);
        fields.push((
            key("size"),
            string_literal(&format!("{w}x{h}"), self.escaped),
        ));
        match &self.id {
            Some(Id::Str(s)) => fields.push((key("id"), string_literal(s, self.escaped))),
            Some(Id::Num(n)) => fields.push((key("id"), n.to_string())),
            Some(Id::Null) => fields.push((key("id"), "null".to_owned())),
            None => {}
        }
        fields.push((
            key("image_key"),
            string_literal(&self.image_key, self.escaped),
        ));
        if let Some(k) = &self.idempotency_key {
            fields.push((key("idempotency_key"), string_literal(k, self.escaped)));
        }
        let sep = if self.pretty { ",\n  " } else { ", " };
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        if self.pretty {
            format!("{{\n  {}\n}}", body.join(sep))
        } else {
            format!("{{{}}}", body.join(sep))
        }
    }

    /// What the reader must make of it at `line`, `index`.
    fn expected(&self, line: u64, index: u64) -> String {
        let id = match &self.id {
            Some(Id::Str(s)) => s.clone(),
            Some(Id::Num(n)) => n.to_string(),
            Some(Id::Null) | None => (index + 1).to_string(),
        };
        let (w, h) = self.size;
        let idem = match &self.idempotency_key {
            Some(k) => k.clone(),
            None => format!("{}:{w}x{h}", self.image_key),
        };
        format!(
            "{line} #{index} ok id={id:?} key={:?} size={w}x{h} idem={idem:?} attempts=0",
            self.image_key
        )
    }
}

/// Blank-ish text between records: whitespace and newlines, `\r\n` included.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => "[ \t\n]{0,4}",
        1 => Just("\r\n".to_owned()),
    ]
}

/// A file of valid tasks in both formats, with the records the reader must
/// yield from each.
#[derive(Clone, Debug)]
struct ValidFile {
    ndjson: String,
    ndjson_expected: Vec<String>,
    json: String,
    json_expected: Vec<String>,
}

/// The 1-based line on which the byte at the end of `text` falls.
fn line_after(text: &str) -> u64 {
    text.bytes().filter(|&b| b == b'\n').count() as u64 + 1
}

fn valid_file() -> impl Strategy<Value = ValidFile> {
    vec((spec(), gap(), gap()), 0..12).prop_map(|tasks| {
        let mut file = ValidFile {
            ndjson: String::new(),
            ndjson_expected: Vec::new(),
            json: String::from("["),
            json_expected: Vec::new(),
        };
        for (i, (task, before, after)) in tasks.iter().enumerate() {
            let i = i as u64;
            // NDJSON: one object per line (no pretty-printing), blank lines between.
            let flat = Spec {
                pretty: false,
                ..task.clone()
            };
            file.ndjson.push_str(&before.replace(['\r'], ""));
            if !file.ndjson.is_empty() && !file.ndjson.ends_with('\n') {
                file.ndjson.push('\n');
            }
            let line = line_after(&file.ndjson);
            file.ndjson_expected.push(flat.expected(line, i));
            file.ndjson.push_str(&flat.to_json());
            file.ndjson
                .push_str(if after.contains('\r') { "\r\n" } else { "\n" });
            // JSON array: any layout.
            if i > 0 {
                file.json.push(',');
            }
            file.json.push_str(before);
            let line = line_after(&file.json);
            file.json_expected.push(task.expected(line, i));
            file.json.push_str(&task.to_json());
            file.json.push_str(after);
        }
        file.json.push_str("]\n");
        file
    })
}

/// Valid files with a few bytes inserted, removed, replaced, or the end cut off.
fn mutated_file() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_file(),
        any::<bool>(),
        vec(
            (
                any::<prop::sample::Index>(),
                0u8..4,
                select(JSONISH.to_vec()),
            ),
            1..4,
        ),
    )
        .prop_map(|(file, json, edits)| {
            let mut bytes = if json { file.json } else { file.ndjson }.into_bytes();
            for (at, op, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    2 if i < bytes.len() => bytes[i] = b,
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
}

/// Any input worth reading: noise, valid files, damaged valid files.
fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        hostile_bytes(),
        valid_file().prop_map(|f| f.json.into_bytes()),
        valid_file().prop_map(|f| f.ndjson.into_bytes()),
        mutated_file(),
    ]
}

// ---------------------------------------------------------------------------
// (a) Arbitrary bytes
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Random bytes never panic; they yield records, then at most one error,
    /// then nothing (checked inside `read_all`), under any options.
    #[test]
    fn random_bytes_never_panic_and_end_in_at_most_one_error(
        bytes in hostile_bytes(),
        options in options(),
    ) {
        read_bytes(&bytes, options);
    }

    /// Damaged valid files: the same contract, and the records before the damage
    /// are still read.
    #[test]
    fn damaged_files_keep_the_contract(bytes in mutated_file(), options in options()) {
        read_bytes(&bytes, options);
    }

    /// A file whose records fit the limits and whose format is forced to the one it is
    /// in never ends in a size or depth error: those limits only refuse what exceeds them.
    #[test]
    fn limits_refuse_only_what_exceeds_them(file in valid_file(), json in any::<bool>()) {
        let (text, expected, format) = if json {
            (file.json, file.json_expected, InputFormat::Json)
        } else {
            (file.ndjson, file.ndjson_expected, InputFormat::Ndjson)
        };
        // The largest record is below the file's length; nesting is at most 6
        // (task object, unknown field's value of depth ≤ 5).
        let options = ReaderOptions {
            format,
            max_record_bytes: text.len().max(1),
            max_depth: 6,
            strict: false,
        };
        prop_assert_eq!(read_bytes(text.as_bytes(), options), expected);
    }
}

// ---------------------------------------------------------------------------
// (b) Arbitrary JSON values
// ---------------------------------------------------------------------------

/// Checks there are `count` items and none is an error.
fn assert_all_records(items: &[String], count: usize, what: &str) {
    assert_eq!(items.len(), count, "{what}: {items:#?}");
    for item in items {
        assert!(!item.starts_with("error:"), "{what}: {item}");
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any JSON value, as one NDJSON line or one array element, is exactly one
    /// record (a task or an invalid task), never a file error.
    #[test]
    fn any_json_value_is_one_record(value in json_value()) {
        let text = serde_json::to_string(&value).unwrap();
        let ndjson = format!("{text}\n");
        let forced = ReaderOptions { format: InputFormat::Ndjson, ..ReaderOptions::default() };
        let items = read_bytes(ndjson.as_bytes(), forced);
        assert_all_records(&items, 1, &ndjson);
        prop_assert!(items[0].starts_with("1 #0 "), "{:?}", items);
        if value.is_object() {
            // Auto-detection picks NDJSON for an object line.
            prop_assert_eq!(&read_bytes(ndjson.as_bytes(), ReaderOptions::default()), &items);
        }
        for format in [InputFormat::Auto, InputFormat::Json] {
            let array = format!("[{text}]");
            let options = ReaderOptions { format, ..ReaderOptions::default() };
            let from_array = read_bytes(array.as_bytes(), options);
            // The same verdict whichever way the value is framed.
            prop_assert_eq!(&from_array, &items);
        }
    }

    /// A pretty-printed array of any values yields one record per element, each
    /// on the line where its element starts.
    #[test]
    fn pretty_arrays_of_any_values_keep_count_and_lines(values in vec(json_value(), 0..6)) {
        let text = serde_json::to_string_pretty(&Value::Array(values.clone())).unwrap();
        let items = read_bytes(text.as_bytes(), ReaderOptions::default());
        assert_all_records(&items, values.len(), &text);
        let mut line = 2u64;
        for (i, (item, value)) in items.iter().zip(&values).enumerate() {
            let prefix = format!("{line} #{i} ");
            prop_assert!(item.starts_with(&prefix), "{} should start with {}", item, prefix);
            line += serde_json::to_string_pretty(value).unwrap().matches('\n').count() as u64 + 1;
        }
    }

    /// Any value in any task field is one record; a wrongly typed field is an
    /// invalid task that names the field, never a file error.
    #[test]
    fn any_value_in_a_task_field_is_one_record(
        field in select(vec!["image_key", "size", "id", "idempotency_key"]),
        value in json_value(),
    ) {
        let mut task = serde_json::json!({"image_key": "img/a.jpg", "size": "200x200"});
        task[field] = value.clone();
        let line = serde_json::to_string(&task).unwrap();
        let items = read_bytes(line.as_bytes(), ReaderOptions::default());
        assert_all_records(&items, 1, &line);
        let wrong_type = match (field, &value) {
            (_, Value::String(_)) => false,
            ("id" | "idempotency_key", Value::Null) => false,
            ("id", Value::Number(n)) => n.as_u64().is_none(),
            _ => true,
        };
        if wrong_type {
            let field_named = format!("field `{field}`");
            prop_assert!(items[0].contains(" invalid: ") && items[0].contains(&field_named), "{:?}", items);
        }
    }

    /// An object with a valid `image_key` and `size` (and any unknown fields)
    /// parses to a task with exactly those values, whatever the escaping.
    #[test]
    fn valid_objects_parse_to_their_task(task in spec()) {
        let text = task.to_json();
        let expected = vec![task.expected(1, 0)];
        let as_line = if task.pretty { None } else { Some(format!("{text}\n")) };
        if let Some(line) = as_line {
            prop_assert_eq!(&read_bytes(line.as_bytes(), ReaderOptions::default()), &expected);
        }
        let array = format!("[{text}]");
        prop_assert_eq!(&read_bytes(array.as_bytes(), ReaderOptions::default()), &expected);
    }
}

// ---------------------------------------------------------------------------
// (c) Round trips
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Valid tasks written as NDJSON (blank lines, CRLF) and as a JSON array
    /// (any whitespace, pretty objects) read back equal, with their lines and
    /// positions.
    #[test]
    fn valid_tasks_round_trip_in_both_formats(file in valid_file()) {
        let auto_ndjson = read_bytes(file.ndjson.as_bytes(), ReaderOptions::default());
        if file.ndjson.is_empty() {
            // Auto-detection refuses an empty file; forced NDJSON reads it as no tasks.
            prop_assert_eq!(auto_ndjson.len(), 1);
            prop_assert!(auto_ndjson[0].ends_with("found end of file"), "{:?}", auto_ndjson);
        } else {
            prop_assert_eq!(auto_ndjson, file.ndjson_expected.clone());
        }
        let json = read_bytes(file.json.as_bytes(), ReaderOptions::default());
        prop_assert_eq!(json, file.json_expected.clone());
        // With the format forced, the same.
        let forced = |format| ReaderOptions { format, ..ReaderOptions::default() };
        prop_assert_eq!(read_bytes(file.ndjson.as_bytes(), forced(InputFormat::Ndjson)), file.ndjson_expected);
        prop_assert_eq!(read_bytes(file.json.as_bytes(), forced(InputFormat::Json)), file.json_expected);
    }

    /// What `taskq generate` writes reads back as the tasks it generated, on the
    /// lines where it wrote them.
    #[test]
    fn generated_files_read_back_equal(
        count in 0u64..200,
        duplicates in prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
        seed in any::<u64>(),
        json in any::<bool>(),
    ) {
        let opts = GenerateOptions {
            count,
            format: if json { OutputFormat::Json } else { OutputFormat::Ndjson },
            duplicates,
            seed,
        };
        let mut bytes = Vec::new();
        prop_assert_eq!(write_tasks(&opts, &mut bytes).unwrap(), count);
        let (first_line, format) = if json { (2, InputFormat::Json) } else { (1, InputFormat::Ndjson) };
        let expected: Vec<String> = generate_tasks(&opts)
            .enumerate()
            .map(|(i, task)| {
                let i = i as u64;
                describe(&Ok(Record::Task { line: first_line + i, index: i, task }))
            })
            .collect();
        let forced = ReaderOptions { format, ..ReaderOptions::default() };
        prop_assert_eq!(&read_bytes(&bytes, forced), &expected);
        let auto = read_bytes(&bytes, ReaderOptions::default());
        if bytes.is_empty() {
            // `generate --count 0 --format ndjson` writes an empty file, which
            // auto-detection refuses (an empty file is most likely a mistake).
            prop_assert!(auto[0].ends_with("found end of file"), "{:?}", auto);
        } else {
            prop_assert_eq!(&auto, &expected);
        }
    }
}

// ---------------------------------------------------------------------------
// (d) Chunk boundaries
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Reading one byte per `read` call, or through chunks of any sizes with
    /// `Interrupted` between some of them, gives the same items as reading the
    /// bytes in one piece.
    #[test]
    fn chunking_never_changes_the_result(
        bytes in any_input(),
        options in options(),
        sizes in vec(1usize..64, 1..16),
        interrupts in vec(prop::bool::weighted(0.2), 0..8),
    ) {
        let whole = read_bytes(&bytes, options);
        let buffered = read_all(BufReader::new(&bytes[..]), bytes.len(), options);
        prop_assert_eq!(&buffered, &whole, "BufReader");
        let one_byte = read_all(BufReader::new(OneByte(&bytes)), bytes.len(), options);
        prop_assert_eq!(&one_byte, &whole, "one byte per read");
        let tiny = read_all(BufReader::with_capacity(1, &bytes[..]), bytes.len(), options);
        prop_assert_eq!(&tiny, &whole, "a 1-byte buffer");
        let chunked = read_all(Chunked::new(&bytes, &sizes, &interrupts, None), bytes.len(), options);
        prop_assert_eq!(&chunked, &whole, "chunks of {:?}", sizes);
    }

    /// A read error part way is reported once, as a read error (unless a file
    /// error came first), after the records that were complete before it.
    #[test]
    fn a_read_error_ends_the_stream_once(
        bytes in any_input(),
        options in options(),
        sizes in vec(1usize..64, 1..8),
        fail_at in any::<prop::sample::Index>(),
    ) {
        let fail_at = fail_at.index(bytes.len() + 1);
        let whole = read_bytes(&bytes, options);
        let failing = read_all(Chunked::new(&bytes, &sizes, &[], Some(fail_at)), bytes.len(), options);
        let (last, before) = failing.split_last().expect("at least the read error");
        // Everything before the last item was read as from the whole input.
        prop_assert!(before.len() <= whole.len());
        prop_assert_eq!(before, &whole[..before.len()]);
        let is_read_error = last.starts_with("error: input:") && last.contains(": read error: disk on fire");
        let is_same_as_whole = whole.get(before.len()) == Some(last);
        prop_assert!(is_read_error || is_same_as_whole, "last item {:?}, whole {:?}", last, whole);
    }
}

// ---------------------------------------------------------------------------
// (e) NDJSON resync and strict reading
// ---------------------------------------------------------------------------

/// Whether an NDJSON line holds nothing but whitespace (what the reader skips
/// between records: space, tab, CR).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// The 1-based numbers of the non-blank lines of `bytes`.
fn non_blank_lines(bytes: &[u8]) -> Vec<u64> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !is_blank(line))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

/// `bytes` with every non-blank line but line `keep` (1-based) replaced by
/// `{}`, an invalid task that takes one record's place.
fn only_line(bytes: &[u8], keep: u64) -> Vec<u8> {
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| match i as u64 + 1 == keep || is_blank(line) {
            true => line,
            false => &b"{}"[..],
        })
        .collect();
    lines.join(&b'\n')
}

/// The line of a [`describe`]d record (`"7 #3 ..."`).
fn record_line(item: &str) -> u64 {
    item.split(' ')
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("not a record: {item}"))
}

proptest! {
    #![proptest_config(config())]

    /// Read as NDJSON, any bytes give one record per non-blank line, on that
    /// line and in order, and never an error: a line that is not a JSON record
    /// is an invalid record, and the reader goes on at the next newline.
    #[test]
    fn ndjson_gives_one_record_per_non_blank_line_and_no_error(
        bytes in any_input(),
        options in options(),
    ) {
        let options = ReaderOptions { format: InputFormat::Ndjson, strict: false, ..options };
        let items = read_bytes(&bytes, options);
        let lines = non_blank_lines(&bytes);
        prop_assert_eq!(items.len(), lines.len(), "{:?}", items);
        for (index, (item, line)) in items.iter().zip(&lines).enumerate() {
            let prefix = format!("{line} #{index} ");
            prop_assert!(item.starts_with(&prefix), "{} should start with {}", item, prefix);
        }
    }

    /// What an NDJSON line gives does not depend on the other lines: with every
    /// other non-blank line replaced by another record, it gives the same item.
    #[test]
    fn an_ndjson_line_is_read_alone(bytes in any_input(), options in options()) {
        let options = ReaderOptions { format: InputFormat::Ndjson, strict: false, ..options };
        let items = read_bytes(&bytes, options);
        for (index, line) in non_blank_lines(&bytes).into_iter().enumerate() {
            let alone = read_bytes(&only_line(&bytes, line), options);
            prop_assert_eq!(&alone[index], &items[index], "line {}", line);
        }
    }

    /// Read strictly, any input gives the same items as read leniently up to
    /// the first invalid record; that record is the one error, on its line,
    /// and nothing follows it. Without an invalid record, both are the same.
    #[test]
    fn strict_ends_at_the_first_invalid_record(bytes in any_input(), options in options()) {
        let lenient = read_bytes(&bytes, ReaderOptions { strict: false, ..options });
        let strict = read_bytes(&bytes, ReaderOptions { strict: true, ..options });
        match lenient.iter().position(|item| item.contains(" invalid: ")) {
            None => prop_assert_eq!(strict, lenient),
            Some(first) => {
                prop_assert_eq!(strict.len(), first + 1, "{:?}", strict);
                prop_assert_eq!(&strict[..first], &lenient[..first]);
                let at = format!("error: input:{}:", record_line(&lenient[first]));
                prop_assert!(strict[first].starts_with(&at), "{} should start with {}", strict[first], at);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed examples the properties rely on
// ---------------------------------------------------------------------------

#[test]
fn chunked_reader_helper_behaves() {
    let data = b"abcdefghij";
    let mut r = Chunked::new(data, &[3, 1], &[true, false], None);
    assert_eq!(r.fill_buf().unwrap_err().kind(), io::ErrorKind::Interrupted);
    let mut out = Vec::new();
    loop {
        match r.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => {
                let n = chunk.len();
                out.extend_from_slice(chunk);
                r.consume(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(out, data);
    let mut failing = Chunked::new(data, &[4], &[], Some(6));
    let mut buf = Vec::new();
    assert!(failing.read_to_end(&mut buf).is_err());
    assert_eq!(buf, b"abcdef");
}

#[test]
fn describe_leaves_out_the_parse_time() {
    let data = br#"{"image_key": "img/a.jpg", "size": "2x3", "id": 7}"#;
    let a = read_bytes(data, ReaderOptions::default());
    std::thread::sleep(std::time::Duration::from_millis(2));
    let b = read_bytes(data, ReaderOptions::default());
    assert_eq!(a, b);
    assert_eq!(
        a,
        ["1 #0 ok id=\"7\" key=\"img/a.jpg\" size=2x3 idem=\"img/a.jpg:2x3\" attempts=0"]
    );
}

/// A `Read` that plays a script: each step is some bytes, an end of file
/// (`Ok(0)`), or an `Interrupted` error; after the script, end of file.
struct Script {
    steps: VecDeque<Step>,
}

enum Step {
    Bytes(&'static [u8]),
    End,
    Interrupted,
}

impl Read for Script {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self.steps.pop_front() {
            Some(Step::Bytes(b)) => {
                assert!(b.len() <= out.len());
                out[..b.len()].copy_from_slice(b);
                Ok(b.len())
            }
            Some(Step::Interrupted) => Err(io::ErrorKind::Interrupted.into()),
            Some(Step::End) | None => Ok(0),
        }
    }
}

#[test]
fn a_read_at_the_end_is_not_repeated() {
    const A: &[u8] = b"{\"image_key\": \"img/a.jpg\", \"size\": \"200x200\"}\n";
    const B: &[u8] = b"{\"image_key\": \"img/b.jpg\", \"size\": \"200x200\"}\n";
    // A signal interrupts the read that follows the end of the file: the end
    // was already seen, so the input is complete and read without error.
    let script = Script {
        steps: [Step::Bytes(A), Step::End, Step::Interrupted].into(),
    };
    let items = read_all(BufReader::new(script), A.len(), ReaderOptions::default());
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].starts_with("1 #0 ok"), "{items:?}");

    // A terminal: Ctrl-D ends the input. What is typed after it is not part of
    // this file, and the reader must not wait for it.
    let reader = TaskReader::new(
        BufReader::new(Script {
            steps: [Step::Bytes(A), Step::End, Step::Bytes(B)].into(),
        }),
        "tty",
        ReaderOptions::default(),
    );
    let items: Vec<String> = reader.map(|i| describe(&i)).collect();
    assert_eq!(items.len(), 1, "read past the end of the input: {items:?}");
}

#[test]
fn size_and_depth_limits_give_one_answer_whatever_the_chunking() {
    // Over both limits: 64 bytes (the smallest the CLI allows) are passed at
    // byte 80, 64 levels of nesting at byte 150 or so.
    let record = format!(
        r#"[{{"image_key": "img/a.jpg", "size": "1x1", "pad": "{}", "deep": {}{}}}]"#,
        "x".repeat(40),
        "[".repeat(70),
        "]".repeat(70)
    );
    let options = ReaderOptions {
        max_record_bytes: 64,
        ..ReaderOptions::default()
    };
    let bytes = record.as_bytes();
    let whole = read_bytes(bytes, options);
    let one_byte = read_all(BufReader::new(OneByte(bytes)), bytes.len(), options);
    // The same bytes must give the same error from a file (256 KiB reads) as
    // from a pipe that delivers them a few at a time.
    assert_eq!(whole, one_byte);
}

#[test]
fn a_short_first_read_is_not_taken_for_a_broken_bom() {
    // U+FF5B FULLWIDTH LEFT CURLY BRACKET and U+F000: valid UTF-8, not a BOM.
    for (text, format) in [
        ("\u{FF5B}\"image_key\": \"img/a.jpg\"}\n", InputFormat::Auto),
        (
            "\u{FF5B}\"image_key\": \"img/a.jpg\"}\n",
            InputFormat::Ndjson,
        ),
        ("\u{F000}", InputFormat::Auto),
    ] {
        let options = ReaderOptions {
            format,
            ..ReaderOptions::default()
        };
        let bytes = text.as_bytes();
        let whole = read_bytes(bytes, options);
        assert!(!whole[0].contains("invalid UTF-8"), "{whole:?}");
        let one_byte = read_all(BufReader::new(OneByte(bytes)), bytes.len(), options);
        assert_eq!(one_byte, whole, "{text:?} as {format:?}");
    }
}
