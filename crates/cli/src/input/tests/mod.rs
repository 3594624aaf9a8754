//! Unit tests of the task reader, by concern; the helpers here read an input
//! whole and a byte at a time and describe what comes out.

mod fields;
mod format;
mod generated;
mod limits;
mod precheck;
mod scan;

use std::io::BufReader;

use super::*;

const A: &str = r#"{"image_key": "img/a.jpg", "size": "200x200"}"#;
const B: &str = r#"{"image_key": "img/b.jpg", "size": "400x400"}"#;

/// One line per item: `{line} #{index} ok ...`, `{line} #{index} invalid: ...`
/// or `error: ...`.
fn describe(item: Result<Record, InputError>) -> String {
    match item {
        Ok(Record::Task { line, index, task }) => format!(
            "{line} #{index} ok id={} {} {} key={}",
            task.id(),
            task.image_key(),
            task.size(),
            task.idempotency_key()
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

const FILE_ERROR: &str = "expected a JSON array of task objects or NDJSON (one object per line)";
